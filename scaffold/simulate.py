"""Synthetic cohorts with planted copy-number changes, for the demo, tests and benchmark.

A cohort is a random reference genome (autosomes ``chr1..chrN`` plus smaller ``chrX`` and
``chrY``, with runs of ``N``), a BED of the assay's targets, a GENCODE-style GFF3 whose genes
cover them, and one paired-end BAM per sample, as the cohort's assay (``make_cohort(assay=)``,
named like CNVkit's ``batch -m``) sequences it:

- ``"hybrid"`` (the default; an exome): ~200-bp targets every few kb, 85% of the fragments on
  them (± ``TARGET_FLANK``), the rest anywhere outside N runs; 3% duplicates, marked.
- ``"amplicon"``: a panel of a few hundred 150-250 bp amplicons tiled in gene-like clusters;
  every fragment is one amplicon (read 1 starts at its start, read 2 ends at its end), each
  amplicon amplified with its own efficiency (the same in every sample); no duplicate marking
  (no markdup @PG, no 0x400 flag: amplicon reads all start alike).
- ``"wgs"``: fragments uniform over the genome outside N runs; 3% duplicates, marked. There is
  no target BED (``Cohort.bed`` is None); the GFF3's genes are the exome's (exons where a hybrid
  cohort of the seed has targets).
 Read depth follows the
copy number: autosomes carry 2 copies, chrX 1 (male) or 2 (female), chrY 1 or 0, and each
planted :class:`Event` sets the copy number of its region. A tumour of purity ``p`` is a mix:
its depth follows ``p * tumour copies + (1 - p) * normal copies`` (a normal of its own sex).
Everything is determined by the seed.

With ``vcf_suffix`` the cohort also gets one VCF per experimental sample, as a germline caller
would write it: heterozygous SNVs inside the targets, shared by the samples of one individual
(a tumour and its matched normal, :attr:`SampleSpec.normal`), with the tumour's column and its
normal's. The tumour's allele fractions follow its copies, minor-allele copies
(:attr:`Event.minor`) and purity; depths are the reads that cover each SNV in its BAM. The
reads themselves carry the reference sequence: CNVkit takes allele fractions from the VCF only.

BAM records are built as numpy structured arrays (one fixed-size binary record per read, see
the SAM specification section 4.2) and streamed, coordinate-sorted, as an uncompressed BAM into
``samtools markdup``, which compresses and marks the few planted duplicates (or, unmarked,
``samtools view --no-PG -b``); no per-read Python.
"""

import argparse
import csv
import os
import struct
import subprocess
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pysam

AUTOSOME_LENGTH = 2_000_000
TARGET_SPACING = 3_000  # mean distance between target starts
TARGET_FLANK = 50  # fragments centred up to this far outside a target count as on-target
ON_TARGET_FRACTION = 0.85
DUPLICATE_FRACTION = 0.03
FRAGMENT_MEAN, FRAGMENT_SD = 250, 30
BASE_QUALITY = 30
MAPQ = 60
GC_BLOCK = 20_000  # GC content varies between blocks of this size
SNVS_PER_TARGET = 2  # heterozygous germline SNVs of an individual in each target
ASSAYS = ("hybrid", "amplicon", "wgs")  # as CNVkit's `batch -m`
AMPLICON_SIZE = (150, 250)  # an amplicon's length, inclusive
AMPLICON_GAP = (5, 40)  # between the neighbouring amplicons of a cluster
AMPLICONS_PER_CLUSTER = (4, 12)  # one cluster is one gene
AMPLICON_CLUSTERS = 14  # clusters per autosome (contigs of other lengths: in proportion)
AMPLICON_EFFICIENCY_SD = 0.2  # log-normal spread of the amplicons' yields

_NT16 = np.full(256, 15, dtype=np.uint8)  # BAM 4-bit base codes; anything else is N
for _code, _base in ((1, "A"), (2, "C"), (4, "G"), (8, "T")):
    _NT16[ord(_base)] = _NT16[ord(_base.lower())] = _code


@dataclass(frozen=True)
class Event:
    """A region ``[start, end)`` (0-based) of ``chrom`` that carries ``copies`` copies.

    ``minor`` is how many of them are of the rarer parental allele (``0 <= minor <= copies //
    2``); by default ``min(1, copies // 2)``: a deletion leaves one allele, a gain adds copies
    of one allele only. A copy-neutral LOH is ``Event(chrom, start, end, copies=2, minor=0)``.
    """

    chrom: str
    start: int
    end: int
    copies: int
    minor: int | None = None

    @property
    def minor_copies(self) -> int:
        return min(1, self.copies // 2) if self.minor is None else self.minor


@dataclass(frozen=True)
class SampleSpec:
    """One sample: its name, sex (``"male"``/``"female"``) and planted copy-number events.

    ``purity`` is the tumour's fraction of the sample (the rest is normal tissue of its sex);
    ``normal`` names its matched normal, a control of the same individual: they share germline
    SNVs, and the tumour's VCF has the normal's column too (named as the normal). ``vcf_sample``
    names the tumour's own column (default: its name). ``noise`` (0: none) makes the library
    uneven, as a poor capture: each target (hybrid) or amplicon draws its own capture efficiency
    in this sample, lognormal with sigma ``noise``, from the cohort's seed and the sample's name
    alone, so the sample's other draws and the other samples stay as they were; off-target and
    whole-genome reads are unaffected.
    """

    name: str
    sex: str
    events: tuple[Event, ...] = ()
    control: bool = False
    purity: float = 1.0
    normal: str | None = None
    vcf_sample: str | None = None
    noise: float = 0.0

    def baseline(self, chrom: str) -> int:
        """Copy number of ``chrom`` outside any event."""
        male = self.sex == "male"
        return {"chrX": 1 if male else 2, "chrY": 1 if male else 0}.get(chrom, 2)

    @property
    def individual(self) -> str:
        """Whose germline the sample carries: its matched normal's, else its own."""
        return self.normal or self.name


@dataclass
class Cohort:
    """Paths of a simulated cohort's files, plus what was planted in it."""

    ref: Path
    bed: Path | None  # the targets (amplicons); None for a "wgs" cohort, which has none
    annotation: Path
    bams: dict[str, Path]
    samples: list[SampleSpec]
    genes: dict[str, tuple[str, int, int]] = field(default_factory=dict)  # 0-based half-open
    vcfs: dict[str, Path] = field(default_factory=dict)  # experimental sample -> its VCF
    assay: str = "hybrid"  # "hybrid" | "amplicon" | "wgs", as make_cohort's

    @property
    def controls(self) -> list[Path]:
        """BAMs of the control samples."""
        return [self.bams[s.name] for s in self.samples if s.control]

    @property
    def experimental(self) -> list[Path]:
        """BAMs of the experimental (non-control) samples."""
        return [self.bams[s.name] for s in self.samples if not s.control]

    def request_samples(self, wrong_sex: Iterable[str] = ()) -> list[dict]:
        """The request's ``samples`` rows stating what was planted (purity only when below 1);
        the samples named in ``wrong_sex`` are stated with the other sex, a planted mismatch."""
        wrong = set(wrong_sex)
        rows = []
        for spec in self.samples:
            sex = spec.sex if spec.name not in wrong else _OTHER_SEX[spec.sex]
            row = {"id": spec.name, "bam": str(self.bams[spec.name]),
                   "role": "control" if spec.control else "experimental", "sex": sex}  # fmt: skip
            if spec.purity != 1:
                row["purity"] = spec.purity
            if spec.name in self.vcfs:
                row["vcf"] = str(self.vcfs[spec.name])
                if spec.vcf_sample:
                    row["vcf_sample"] = spec.vcf_sample
            if spec.normal:
                row["normal"] = spec.normal
            rows.append(row)
        return rows

    def request(
        self, output_dir: str | Path, *, method: str | None = None,
        wrong_sex: Iterable[str] = (), **extra: object
    ) -> dict:
        """A request (README's body) for this cohort: ``samples`` (:meth:`request_samples`),
        ``ref``, ``bed`` (left out when the cohort has none), ``output_dir`` and ``method``
        (default: the cohort's assay; left out when "hybrid", as requests before assays had
        it), then ``extra`` fields (e.g. ``autobin=True``; ``bed=None`` leaves it out)."""
        method = method or self.assay
        body: dict = {"samples": self.request_samples(wrong_sex), "ref": str(self.ref)}
        if self.bed is not None:
            body["bed"] = str(self.bed)
        body["output_dir"] = str(output_dir)
        if method != "hybrid":
            body["method"] = method
        body |= extra
        return {k: v for k, v in body.items() if v is not None}

    def write_genes_bed(self, path: str | Path) -> Path:
        """Write the genes (:attr:`genes`, whole, named by symbol) as a BED: e.g. the BED a
        "wgs" request may give (its targets then), which such a cohort has none of."""
        path = Path(path)
        path.write_text("".join(f"{chrom}\t{start}\t{end}\t{symbol}\n"
                                for symbol, (chrom, start, end) in self.genes.items()))
        return path

    def write_samplesheet(self, path: str | Path, wrong_sex: Iterable[str] = ()) -> Path:
        """Write :meth:`request_samples` as a samplesheet (CSV, or TSV for a ``.tsv`` path)."""
        path = Path(path)
        columns = ["sample", "bam", "role", "sex", "purity", "vcf", "vcf_sample", "normal"]
        with open(path, "w", newline="") as out:
            writer = csv.DictWriter(out, columns, delimiter="\t" if path.suffix == ".tsv" else ",")
            writer.writeheader()
            for row in self.request_samples(wrong_sex):
                writer.writerow({"sample": row.pop("id"), **row})
        return path


_OTHER_SEX = {"male": "female", "female": "male"}


@dataclass
class _Genome:
    seqs: dict[str, np.ndarray]  # ASCII bytes per contig, in header order
    gaps: dict[str, list[tuple[int, int]]]  # runs of N
    targets: dict[str, np.ndarray]  # (n, 2) int64 starts/ends per contig
    # Amplicon panels: the number of amplicons of each cluster (gene) in order, per contig,
    # and each amplicon's relative yield; empty for the other assays.
    clusters: dict[str, list[int]] = field(default_factory=dict)
    efficiency: dict[str, np.ndarray] = field(default_factory=dict)


def default_events(chrom_length: int = AUTOSOME_LENGTH) -> tuple[Event, ...]:
    """A heterozygous deletion on chr2 and a single-copy gain on chr3 (20-25% of each)."""
    n = chrom_length
    return (
        Event("chr2", n * 25 // 100, n * 45 // 100, 1),
        Event("chr3", n * 55 // 100, n * 80 // 100, 3),
    )


DEFAULT_EVENTS = default_events()


def standard_samples(
    chrom_length: int = AUTOSOME_LENGTH, n_experimental: int = 2
) -> list[SampleSpec]:
    """A male and a female control plus experimental samples (alternating sex) with events."""
    events = default_events(chrom_length)
    samples = [
        SampleSpec("Control_M", "male", control=True),
        SampleSpec("Control_F", "female", control=True),
    ]
    sexes = ("male", "female")
    samples += [SampleSpec(f"Sample_{i + 1}", sexes[i % 2], events) for i in range(n_experimental)]
    return samples


def tumour_normal_samples(
    chrom_length: int = AUTOSOME_LENGTH, purities: tuple[float, ...] = (0.7, 0.5)
) -> list[SampleSpec]:
    """Tumours ``Tumour_i`` of the given purities (alternating sex), each with its matched
    normal ``Normal_i``; events: the default deletion and gain plus a copy-neutral LOH on chr4
    (10-40%)."""
    n = chrom_length
    events = (*default_events(n), Event("chr4", n * 10 // 100, n * 40 // 100, 2, minor=0))
    samples = []
    for i, purity in enumerate(purities, 1):
        sex = ("male", "female")[(i - 1) % 2]
        samples += [
            SampleSpec(f"Normal_{i}", sex, control=True),
            SampleSpec(f"Tumour_{i}", sex, events, purity=purity, normal=f"Normal_{i}"),
        ]
    return samples


def seed_like_samples(chrom_length: int = AUTOSOME_LENGTH) -> list[SampleSpec]:
    """The samples of the seed example request: a son with events, father and mother controls."""
    return [
        SampleSpec("Son_S2_ALL", "male", default_events(chrom_length)),
        SampleSpec("Father_S5_ALL", "male", control=True),
        SampleSpec("Mather_S1_ALL", "female", control=True),
    ]


def seed_like_cohort(
    outdir: str | Path,
    reads_per_sample: int = 200_000,
    seed: int = 1,
    chrom_length: int = AUTOSOME_LENGTH,
    assay: str = "hybrid",
) -> Cohort:
    """Write a cohort whose file and sample names match the seed example request."""
    return make_cohort(
        outdir,
        seed_like_samples(chrom_length),
        reads_per_sample=reads_per_sample,
        seed=seed,
        chrom_length=chrom_length,
        ref_name="hg38.filtered.fa",
        bed_name="tEXOME2_ext50.bed",
        annotation_name="gencode.v29.annotation.gff3",
        bam_suffix=".sort.mkdup.bam",
        assay=assay,
    )


def make_cohort(
    outdir: str | Path,
    samples: list[SampleSpec],
    *,
    reads_per_sample: int = 200_000,
    read_length: int = 100,
    seed: int = 1,
    chrom_length: int = AUTOSOME_LENGTH,
    autosomes: int = 4,
    ref_name: str = "reference.fa",
    bed_name: str = "targets.bed",
    annotation_name: str = "annotation.gff3",
    bam_suffix: str = ".bam",
    vcf_suffix: str | None = None,
    threads: int | None = None,
    assay: str = "hybrid",
    mark_duplicates: bool | None = None,
) -> Cohort:
    """Write reference, targets, annotation and one BAM per sample into ``outdir``, and with
    ``vcf_suffix`` (``".vcf"`` or ``".vcf.gz"``, bgzipped and tabix-indexed) one VCF per
    experimental sample, named like its BAM.

    ``assay`` is how the samples were sequenced (module docstring): "hybrid" (the default, the
    same files as before assays existed), "amplicon" (``bed_name`` holds the amplicons;
    ``read_length`` at most 150, the shortest amplicon) or "wgs" (no BED is written:
    ``Cohort.bed`` is None). ``mark_duplicates`` (default: all but amplicon) runs the BAMs
    through ``samtools markdup``; False writes them unmarked (duplicates present, no flag, no
    markdup @PG), e.g. to test what an input check says of an unmarked BAM."""
    if chrom_length < 50_000:
        raise ValueError("chrom_length must be at least 50 kb")
    if assay not in ASSAYS:
        raise ValueError(f"assay must be one of {', '.join(ASSAYS)}, not {assay!r}")
    if assay == "amplicon" and read_length > AMPLICON_SIZE[0]:
        raise ValueError(f"amplicon reads are at most {AMPLICON_SIZE[0]} bp (the shortest "
                         f"amplicon), not {read_length}")
    mark = assay != "amplicon" if mark_duplicates is None else mark_duplicates
    lengths = {f"chr{i}": chrom_length for i in range(1, autosomes + 1)}
    lengths |= {"chrX": chrom_length * 3 // 4, "chrY": chrom_length // 4}
    _validate(samples, lengths)
    if vcf_suffix not in (None, ".vcf", ".vcf.gz"):
        raise ValueError(f"vcf_suffix must be '.vcf' or '.vcf.gz', not {vcf_suffix!r}")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    genome = _make_genome(np.random.default_rng([seed, 0]), lengths)
    if assay == "amplicon":
        _make_amplicons(np.random.default_rng([seed, 4]), genome, chrom_length)
    bed = None if assay == "wgs" else outdir / bed_name
    cohort = Cohort(outdir / ref_name, bed, outdir / annotation_name, {}, samples, assay=assay)
    _write_fasta(cohort.ref, genome.seqs)
    if cohort.bed is not None:
        _write_bed(cohort.bed, genome.targets)
    cohort.genes = _write_gff3(cohort.annotation, genome, np.random.default_rng([seed, 1]))
    threads = threads or min(4, os.cpu_count() or 1)
    snvs = {}  # individual -> germline SNVs, for the samples a VCF has a column of
    if vcf_suffix:
        people = {s.individual: s for s in samples if not s.control}
        snvs = {who: _germline_snvs(genome, spec, seed) for who, spec in people.items()}
    calls = {}  # sample -> its column of its individual's SNVs
    for spec in samples:
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        bam = outdir / f"{spec.name}{bam_suffix}"
        capture = _capture(genome, spec, seed)
        if assay == "amplicon":
            fragments = _amplicon_fragments(genome, spec, reads_per_sample, rng, capture)
        else:
            fragments = _fragments(genome, spec, reads_per_sample, read_length, rng,
                                   on_target=ON_TARGET_FRACTION if assay == "hybrid" else 0.0,
                                   capture=capture)
        _write_bam(bam, genome, spec, fragments, read_length, threads, mark)
        cohort.bams[spec.name] = bam
        if spec.individual in snvs:
            calls[spec.name] = _genotype(genome, spec, snvs[spec.individual], fragments,
                                         read_length, seed)  # fmt: skip
    for spec in samples:
        if vcf_suffix and not spec.control:
            vcf = outdir / f"{spec.name}{vcf_suffix}"
            columns = {spec.vcf_sample or spec.name: calls[spec.name]}
            columns |= {spec.normal: calls[spec.normal]} if spec.normal else {}
            _write_vcf(vcf, genome, snvs[spec.individual], columns)
            cohort.vcfs[spec.name] = vcf
    return cohort


def _validate(samples: list[SampleSpec], lengths: dict[str, int]) -> None:
    names = [s.name for s in samples]
    if len(set(names)) != len(names):
        raise ValueError(f"sample names are not unique: {names}")
    by_name = {s.name: s for s in samples}
    for spec in samples:
        if spec.sex not in ("male", "female"):
            raise ValueError(f"{spec.name}: sex must be 'male' or 'female', not {spec.sex!r}")
        if not 0 < spec.purity <= 1:
            raise ValueError(f"{spec.name}: purity must be in (0, 1], not {spec.purity}")
        normal = by_name.get(spec.normal) if spec.normal else None
        if spec.normal and (spec.control or not normal or not normal.control
                            or normal.sex != spec.sex):  # fmt: skip
            raise ValueError(
                f"{spec.name}: normal {spec.normal!r} must be a control sample of "
                "the same sex, and only an experimental sample has one"
            )
        if spec.vcf_sample and (spec.control or spec.vcf_sample == spec.normal):
            raise ValueError(
                f"{spec.name}: vcf_sample names an experimental sample's column, "
                "which must differ from its normal's"
            )
        for e in spec.events:
            if e.chrom not in lengths or not 0 <= e.start < e.end <= lengths[e.chrom]:
                raise ValueError(f"{spec.name}: event {e} is outside the genome {lengths}")
            if e.copies < 0:
                raise ValueError(f"{spec.name}: event {e} has negative copies")
            if not 0 <= e.minor_copies <= e.copies // 2:
                raise ValueError(f"{spec.name}: event {e} needs 0 <= minor <= copies // 2")


def _make_genome(rng: np.random.Generator, lengths: dict[str, int]) -> _Genome:
    """Random sequence with GC varying per block, N runs at both ends and mid-contig."""
    seqs, gaps, targets = {}, {}, {}
    for chrom, n in lengths.items():
        gc = np.repeat(rng.uniform(0.35, 0.60, n // GC_BLOCK + 1), GC_BLOCK)[:n]
        u = rng.random(n)
        seq = np.where(
            u < gc,
            np.where(u < gc / 2, ord("C"), ord("G")),
            np.where(u < (1 + gc) / 2, ord("A"), ord("T")),
        ).astype(np.uint8)
        telomere, centre = max(1_000, n // 200), n // 40
        runs = [(0, telomere), (n // 2 - centre // 2, n // 2 + centre // 2), (n - telomere, n)]
        for start, end in runs:
            seq[start:end] = ord("N")
        seqs[chrom], gaps[chrom] = seq, runs
        targets[chrom] = _make_targets(rng, n, runs)
    return _Genome(seqs, gaps, targets)


def _make_targets(rng: np.random.Generator, n: int, gaps: list[tuple[int, int]]) -> np.ndarray:
    """~200-bp targets about every TARGET_SPACING bp, at least 1 kb away from any gap."""
    starts = np.arange(0, n, TARGET_SPACING)
    starts += rng.integers(0, TARGET_SPACING // 2, starts.size)
    ends = starts + rng.integers(150, 300, starts.size)
    keep = ends < n
    for gs, ge in gaps:
        keep &= (ends < gs - 1_000) | (starts > ge + 1_000)
    return np.column_stack([starts[keep], ends[keep]])


def _make_amplicons(rng: np.random.Generator, genome: _Genome, autosome: int) -> None:
    """Replace ``genome``'s targets by an amplicon panel: AMPLICON_CLUSTERS clusters per
    autosome (``autosome`` bp; other contigs in proportion, at least one), one at a random place
    in each equal slot of the contig, of 4-12 amplicons of 150-250 bp tiled with 5-40 bp between
    them; clusters within 1 kb of an N run are left out. Each amplicon gets its yield."""
    for chrom, seq in genome.seqs.items():
        n = seq.size
        slots = max(1, round(AMPLICON_CLUSTERS * n / autosome))
        rows, sizes = [], []
        for k in range(slots):
            count = int(rng.integers(AMPLICONS_PER_CLUSTER[0], AMPLICONS_PER_CLUSTER[1] + 1))
            length = rng.integers(AMPLICON_SIZE[0], AMPLICON_SIZE[1] + 1, count)
            gap = rng.integers(AMPLICON_GAP[0], AMPLICON_GAP[1] + 1, count)
            gap[0] = 0
            starts = np.cumsum(gap + np.concatenate([[0], length[:-1]]))
            span = int(starts[-1] + length[-1])
            lo, hi = k * n // slots, (k + 1) * n // slots
            if hi - lo <= span:
                continue
            first = lo + int(rng.integers(0, hi - lo - span))
            end = first + span
            if any(first < ge + 1_000 and end > gs - 1_000 for gs, ge in genome.gaps[chrom]):
                continue
            rows.append(np.column_stack([first + starts, first + starts + length]))
            sizes.append(count)
        genome.targets[chrom] = np.concatenate(rows) if rows else np.zeros((0, 2), np.int64)
        genome.clusters[chrom] = sizes
        genome.efficiency[chrom] = rng.lognormal(0, AMPLICON_EFFICIENCY_SD, sum(sizes))


def _write_fasta(path: Path, seqs: dict[str, np.ndarray]) -> None:
    """Write a FASTA with 60-column lines, and its .fai index."""
    with open(path, "wb") as out:
        for chrom, seq in seqs.items():
            out.write(f">{chrom}\n".encode())
            full = seq.size // 60 * 60
            rows = np.empty((full // 60, 61), dtype=np.uint8)
            rows[:, :60] = seq[:full].reshape(-1, 60)
            rows[:, 60] = ord("\n")
            out.write(rows.tobytes())
            if full < seq.size:
                out.write(seq[full:].tobytes() + b"\n")
    pysam.faidx(str(path))


def _write_bed(path: Path, targets: dict[str, np.ndarray]) -> None:
    with open(path, "w") as out:
        i = 0
        for chrom, rows in targets.items():
            for start, end in rows:
                i += 1
                out.write(f"{chrom}\t{start}\t{end}\ttgt{i:05d}\n")


def _write_gff3(
    path: Path, genome: _Genome, rng: np.random.Generator
) -> dict[str, tuple[str, int, int]]:
    """GENCODE-style GFF3: consecutive runs of 2-6 targets become the exons of one gene (an
    amplicon panel's clusters: one gene each)."""
    genes: dict[str, tuple[str, int, int]] = {}
    lines = ["##gff-version 3"]
    lines += [f"##sequence-region {c} 1 {s.size}" for c, s in genome.seqs.items()]
    for chrom, rows in genome.targets.items():
        first = 0
        clusters = iter(genome.clusters.get(chrom, ()))
        while first < len(rows):
            size = next(clusters) if genome.clusters else int(rng.integers(2, 7))
            exons = rows[first : first + size]
            first += len(exons)
            k = len(genes) + 1
            symbol, gid, tid = f"GENE{k}", f"ENSG{k:011d}.1", f"ENST{k:011d}.1"
            start, end = int(exons[0, 0]), int(exons[-1, 1])
            genes[symbol] = (chrom, start, end)
            strand = "+-"[k % 2]
            common = f"gene_id={gid};gene_type=protein_coding;gene_name={symbol}"
            tx = f"{common};transcript_id={tid};transcript_type=protein_coding"
            tx += f";transcript_name={symbol}-201"
            cols = f"{chrom}\tHAVANA\t{{}}\t{{}}\t{{}}\t.\t{strand}\t.\t"
            lines.append(cols.format("gene", start + 1, end) + f"ID={gid};{common};level=2")
            lines.append(cols.format("transcript", start + 1, end) + f"ID={tid};Parent={gid};{tx}")
            for j, (es, ee) in enumerate(exons, 1):
                attrs = f"ID=exon:{tid}:{j};Parent={tid};{tx};exon_number={j}"
                lines.append(cols.format("exon", es + 1, ee) + attrs)
    path.write_text("\n".join(lines) + "\n")
    return genes


def _copy_number(
    spec: SampleSpec, chrom: str, positions: np.ndarray, minor: bool = False
) -> np.ndarray:
    """The tumour's copies at ``positions`` (with ``minor``: its minor-allele copies)."""
    baseline = spec.baseline(chrom)
    cn = np.full(positions.shape, min(1, baseline // 2) if minor else baseline, dtype=np.int64)
    for e in spec.events:
        if e.chrom == chrom:
            cn[(positions >= e.start) & (positions < e.end)] = e.minor_copies if minor else e.copies
    return cn


def _mixed(spec: SampleSpec, tumour: np.ndarray, normal: float | np.ndarray) -> np.ndarray:
    """What the sample holds: ``purity * tumour + (1 - purity) * normal``."""
    if spec.purity == 1:
        return tumour
    return spec.purity * tumour + (1 - spec.purity) * normal


def _capture(genome: _Genome, spec: SampleSpec, seed: int) -> dict[str, np.ndarray] | None:
    """Each target's capture efficiency in ``spec`` by contig (:attr:`SampleSpec.noise`), or
    None without noise."""
    if not spec.noise:
        return None
    rng = np.random.default_rng([seed, 5, zlib.crc32(spec.name.encode())])
    return {chrom: rng.lognormal(0, spec.noise, len(rows))
            for chrom, rows in genome.targets.items()}


def _weighted_intervals(
    genome: _Genome, spec: SampleSpec, on_target: bool, capture: dict[str, np.ndarray] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows ``(contig index, start, end)`` and their weights, length x copy number (of the
    tumour and normal mix), on target x the sample's capture efficiency (:func:`_capture`).

    On-target intervals are the targets ± ``TARGET_FLANK``; off-target ones tile each contig
    between N runs and event boundaries (N runs get weight 0).
    """
    tables, weights = [], []
    for i, (chrom, seq) in enumerate(genome.seqs.items()):
        if on_target:
            lo = genome.targets[chrom][:, 0] - TARGET_FLANK
            hi = genome.targets[chrom][:, 1] + TARGET_FLANK
        else:
            cuts = {0, seq.size} | {p for gap in genome.gaps[chrom] for p in gap}
            cuts |= {p for e in spec.events if e.chrom == chrom for p in (e.start, e.end)}
            bounds = np.array(sorted(cuts))
            lo, hi = bounds[:-1], bounds[1:]
        mid = (lo + hi) // 2
        weight = (hi - lo) * _mixed(spec, _copy_number(spec, chrom, mid), spec.baseline(chrom))
        if on_target and capture:
            weight = weight * capture[chrom]
        if not on_target:
            for start, end in genome.gaps[chrom]:
                weight[(mid >= start) & (mid < end)] = 0
        tables.append(np.column_stack([np.full(lo.size, i), lo, hi]))
        weights.append(weight)
    return np.concatenate(tables), np.concatenate(weights)


def _draw(rng: np.random.Generator, n: int, intervals: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``n`` random ``(contig index, position)`` rows, uniform within weighted intervals."""
    table, weight = intervals
    rows = np.repeat(table, rng.multinomial(n, weight / weight.sum()), axis=0)
    offsets = (rng.random(len(rows)) * (rows[:, 2] - rows[:, 1])).astype(np.int64)
    return np.column_stack([rows[:, 0], rows[:, 1] + offsets])


@dataclass
class _Fragments:
    """Simulated fragments: contig index, start, size, strand; the last ``n_dups`` are copies."""

    contig: np.ndarray
    start: np.ndarray
    size: np.ndarray
    reverse: np.ndarray
    n_dups: int


def _fragments(
    genome: _Genome,
    spec: SampleSpec,
    n_reads: int,
    read_length: int,
    rng: np.random.Generator,
    on_target: float = ON_TARGET_FRACTION,
    capture: dict[str, np.ndarray] | None = None,
) -> _Fragments:
    """Draw the fragments of ``n_reads`` paired reads of ``spec``, the ``on_target`` fraction
    of them on the targets (0: whole-genome), each target weighted by its ``capture``
    efficiency (:func:`_capture`)."""
    n_fragments = n_reads // 2
    n_dups = round(n_fragments * DUPLICATE_FRACTION)
    n_on = round((n_fragments - n_dups) * on_target)
    picks = np.concatenate(
        [
            _draw(rng, n_on, _weighted_intervals(genome, spec, True, capture)),
            _draw(rng, n_fragments - n_dups - n_on,
                  _weighted_intervals(genome, spec, False, capture)),
        ]
    )
    size = rng.normal(FRAGMENT_MEAN, FRAGMENT_SD, len(picks)).round()
    size = size.clip(read_length, 2 * FRAGMENT_MEAN).astype(np.int64)
    reverse = rng.random(len(picks)) < 0.5
    copied = rng.choice(len(picks), n_dups) if len(picks) else np.zeros(0, np.int64)
    contig, mid, size, reverse = (
        np.concatenate([a, a[copied]]) for a in (picks[:, 0], picks[:, 1], size, reverse)
    )
    lengths = np.array([s.size for s in genome.seqs.values()])
    start = np.clip(mid - size // 2, 0, lengths[contig] - size)
    return _Fragments(contig, start, size, reverse, n_dups)


def _amplicon_fragments(
    genome: _Genome, spec: SampleSpec, n_reads: int, rng: np.random.Generator,
    capture: dict[str, np.ndarray] | None,
) -> _Fragments:
    """The fragments of ``n_reads`` paired reads of an amplicon panel: each is one whole
    amplicon, drawn with weight yield x copy number (of the tumour and normal mix) x the
    sample's capture efficiency (:func:`_capture`)."""
    contig, start, size, weight = [], [], [], []
    for i, (chrom, rows) in enumerate(genome.targets.items()):
        mid = (rows[:, 0] + rows[:, 1]) // 2
        copies = _mixed(spec, _copy_number(spec, chrom, mid), spec.baseline(chrom))
        contig.append(np.full(len(rows), i))
        start.append(rows[:, 0])
        size.append(rows[:, 1] - rows[:, 0])
        weight.append(genome.efficiency[chrom] * copies * (capture[chrom] if capture else 1))
    contig, start, size, weight = (np.concatenate(a) for a in (contig, start, size, weight))
    picked = np.repeat(np.arange(len(start)), rng.multinomial(n_reads // 2, weight / weight.sum()))
    reverse = rng.random(len(picked)) < 0.5
    return _Fragments(contig[picked], start[picked].astype(np.int64),
                      size[picked].astype(np.int64), reverse, 0)  # fmt: skip


def _write_bam(
    path: Path,
    genome: _Genome,
    spec: SampleSpec,
    fragments: _Fragments,
    read_length: int,
    threads: int,
    mark: bool = True,
) -> None:
    """Write the reads of ``fragments`` as a sorted, indexed BAM, dup-marked with ``mark``."""
    contig, start, size, reverse = (
        fragments.contig, fragments.start, fragments.size, fragments.reverse
    )  # fmt: skip
    name_width = len(str(max(len(start) - 1, 0)))

    tmp = path.with_name(f".{path.name}.tmp")
    tmp_index = path.with_name(f".{path.name}.bai.tmp")
    if mark:
        markdup = ["samtools", "markdup", "-@", str(threads), "-O", "BAM", "-", str(tmp)]
    else:
        markdup = ["samtools", "view", "--no-PG", "-@", str(threads), "-b", "-o", str(tmp), "-"]
    try:
        with subprocess.Popen(markdup, stdin=subprocess.PIPE) as proc:
            assert proc.stdin is not None
            proc.stdin.write(_bam_header(genome, spec))
            for i, seq in enumerate(genome.seqs.values()):
                ids = np.flatnonzero(contig == i)
                for chunk in _records(
                    i, seq, ids, start[ids], size[ids], reverse[ids], read_length, name_width
                ):
                    proc.stdin.write(chunk)
        if proc.returncode:
            raise subprocess.CalledProcessError(proc.returncode, markdup)
        subprocess.run(["samtools", "index", str(tmp), str(tmp_index)], check=True)
        os.replace(tmp, path)
        os.replace(tmp_index, f"{path}.bai")
    finally:
        tmp.unlink(missing_ok=True)
        tmp_index.unlink(missing_ok=True)


def _bam_header(genome: _Genome, spec: SampleSpec) -> bytes:
    """Binary BAM header: magic, SAM header text, reference names and lengths."""
    events = ",".join(
        f"{e.chrom}:{e.start}-{e.end}x{e.copies}" + ("" if e.minor is None else f"m{e.minor}")
        for e in spec.events
    )
    purity = "" if spec.purity == 1 else f" purity={spec.purity}"
    text = "@HD\tVN:1.6\tSO:coordinate\n"
    text += "".join(f"@SQ\tSN:{c}\tLN:{s.size}\n" for c, s in genome.seqs.items())
    text += "@PG\tID:simulate\tPN:scaffold.simulate\n"
    text += f"@CO\tsimulated sample {spec.name} sex={spec.sex} events={events or 'none'}{purity}\n"
    raw = text.encode()
    out = [b"BAM\1", struct.pack("<i", len(raw)), raw, struct.pack("<i", len(genome.seqs))]
    for chrom, seq in genome.seqs.items():
        name = chrom.encode() + b"\0"
        out += [struct.pack("<i", len(name)), name, struct.pack("<i", seq.size)]
    return b"".join(out)


def _records(
    contig: int,
    seq: np.ndarray,
    ids: np.ndarray,
    start: np.ndarray,
    size: np.ndarray,
    reverse: np.ndarray,
    read_length: int,
    name_width: int,
    chunk: int = 250_000,
) -> Iterator[bytes]:
    """Binary BAM records of both mates of each fragment, sorted by position, in chunks."""
    n = len(start)
    left = np.arange(2 * n) < n
    pos = np.concatenate([start, start + size - read_length])
    mate_pos = np.concatenate([pos[n:], pos[:n]])
    rev2, size2, ids2 = np.tile(reverse, 2), np.tile(size, 2), np.tile(ids, 2)
    # proper pair; mate reverse (left mate) or self reverse (right mate); read 1 or 2
    flag = 3 + np.where(left, 32, 16) + np.where(left != rev2, 64, 128)
    tlen = np.where(left, size2, -size2)
    codes = np.lib.stride_tricks.sliding_window_view(_NT16[seq], read_length)
    dtype = _record_dtype(read_length, name_width + 2)
    cigar = f"{read_length}M".encode()
    order = np.argsort(pos, kind="stable")
    for part in np.array_split(order, max(1, -(-len(order) // chunk))):
        rec = np.zeros(len(part), dtype)
        rec["block_size"] = dtype.itemsize - 4
        rec["ref_id"] = rec["next_ref_id"] = contig
        rec["pos"], rec["next_pos"] = pos[part], mate_pos[part]
        rec["l_read_name"] = name_width + 2
        rec["mapq"] = MAPQ
        rec["bin"] = _reg2bin(pos[part], pos[part] + read_length)
        rec["n_cigar_op"] = 1
        rec["flag"] = flag[part]
        rec["l_seq"] = read_length
        rec["tlen"] = tlen[part]
        rec["read_name"][:, 0] = ord("r")
        powers = 10 ** np.arange(name_width - 1, -1, -1)
        rec["read_name"][:, 1:-1] = ids2[part, None] // powers % 10 + ord("0")
        rec["cigar"] = read_length << 4  # operation 0 = M
        bases = codes[pos[part]]
        if read_length % 2:
            bases = np.pad(bases, ((0, 0), (0, 1)))
        rec["seq"] = bases[:, 0::2] << 4 | bases[:, 1::2]
        rec["qual"] = BASE_QUALITY
        rec["mc_tag"] = b"MCZ" + cigar  # mate CIGAR and mate score, as `samtools fixmate -m`
        rec["ms_tag"] = b"msi"
        rec["ms_value"] = BASE_QUALITY * read_length
        yield rec.tobytes()


def _record_dtype(read_length: int, name_length: int) -> np.dtype:
    """Layout of one fixed-size BAM alignment record (SAM spec 4.2), with MC and ms tags."""
    return np.dtype(
        [
            ("block_size", "<i4"),
            ("ref_id", "<i4"),
            ("pos", "<i4"),
            ("l_read_name", "u1"),
            ("mapq", "u1"),
            ("bin", "<u2"),
            ("n_cigar_op", "<u2"),
            ("flag", "<u2"),
            ("l_seq", "<i4"),
            ("next_ref_id", "<i4"),
            ("next_pos", "<i4"),
            ("tlen", "<i4"),
            ("read_name", "u1", (name_length,)),
            ("cigar", "<u4"),
            ("seq", "u1", ((read_length + 1) // 2,)),
            ("qual", "u1", (read_length,)),
            ("mc_tag", f"S{len(str(read_length)) + 5}"),
            ("ms_tag", "S3"),
            ("ms_value", "<i4"),
        ]
    )


def _reg2bin(beg: np.ndarray, end: np.ndarray) -> np.ndarray:
    """UCSC binning index of ``[beg, end)`` (SAM spec 5.3), vectorised."""
    end = end - 1
    out = np.zeros(beg.shape, dtype=np.int64)
    for shift, offset in ((26, 1), (23, 9), (20, 73), (17, 585), (14, 4681)):
        same = beg >> shift == end >> shift
        out[same] = offset + (beg[same] >> shift)
    return out


@dataclass
class _Snvs:
    """Heterozygous germline SNVs of one individual, sorted: contig index, 0-based position,
    REF and ALT bases, and whether ALT lies on the haplotype a tumour keeps fewer copies of."""

    contig: np.ndarray
    pos: np.ndarray
    ref: np.ndarray
    alt: np.ndarray
    alt_minor: np.ndarray


def _germline_snvs(genome: _Genome, spec: SampleSpec, seed: int) -> _Snvs:
    """SNVS_PER_TARGET heterozygous SNVs in each target of the contigs ``spec`` has two copies
    of (one in each of as many equal parts of the target), drawn from the seed and the
    individual's name."""
    rng = np.random.default_rng([seed, 2, zlib.crc32(spec.individual.encode())])
    contig, pos = [], []
    for i, (chrom, rows) in enumerate(genome.targets.items()):
        if spec.baseline(chrom) != 2:
            continue
        length = rows[:, 1] - rows[:, 0]
        cuts = [rows[:, 0] + length * k // SNVS_PER_TARGET for k in range(SNVS_PER_TARGET + 1)]
        parts = [lo + rng.integers(0, hi - lo) for lo, hi in zip(cuts, cuts[1:], strict=False)]
        pos.append(np.column_stack(parts).ravel())
        contig.append(np.full(pos[-1].size, i))
    contig, pos = np.concatenate(contig), np.concatenate(pos)
    seqs = list(genome.seqs.values())
    ref = np.array([seqs[c][p] for c, p in zip(contig, pos, strict=True)], dtype=np.uint8)
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    ref_index = np.searchsorted(bases, ref)  # targets lie away from N runs
    alt = bases[(ref_index + rng.integers(1, 4, ref.size)) % 4]
    return _Snvs(contig, pos, ref, alt, rng.random(ref.size) < 0.5)


def _genotype(
    genome: _Genome,
    spec: SampleSpec,
    snvs: _Snvs,
    fragments: _Fragments,
    read_length: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth (reads covering each SNV, duplicates aside) and binomial ALT counts of one
    sample: ALT's expected fraction is the minor allele's, ``(p * minor + (1 - p)) /
    (p * copies + (1 - p) * 2)``, when ALT is on the minor haplotype, else one minus that."""
    rng = np.random.default_rng([seed, 3, zlib.crc32(spec.name.encode())])
    keep = slice(0, len(fragments.start) - fragments.n_dups)
    depth = np.zeros(snvs.pos.size, dtype=np.int64)
    fraction = np.full(snvs.pos.size, 0.5)
    for i, chrom in enumerate(genome.seqs):
        here = snvs.contig == i
        if not here.any():
            continue
        mine = fragments.contig[keep] == i
        start, size = fragments.start[keep][mine], fragments.size[keep][mine]
        reads = np.sort(np.concatenate([start, start + size - read_length]))
        pos = snvs.pos[here]
        depth[here] = np.searchsorted(reads, pos, "right") - np.searchsorted(
            reads, pos - read_length, "right"
        )
        minor = _mixed(spec, _copy_number(spec, chrom, pos, minor=True), 1)
        total = _mixed(spec, _copy_number(spec, chrom, pos), 2)
        fraction[here] = np.divide(minor, total, out=np.full(pos.size, 0.5), where=total > 0)
    fraction = np.where(snvs.alt_minor, fraction, 1 - fraction)
    return depth, rng.binomial(depth, fraction)


def _write_vcf(
    path: Path,
    genome: _Genome,
    snvs: _Snvs,
    columns: dict[str, tuple[np.ndarray, np.ndarray]],
) -> None:
    """Write the SNVs with a GT:AD:DP column per sample (``columns``: depth, ALT counts);
    GT is the germline 0/1 in every column. A ``.gz`` path is bgzipped and tabix-indexed."""
    header = pysam.VariantHeader()
    header.add_line("##source=scaffold.simulate")
    for chrom, seq in genome.seqs.items():
        header.contigs.add(chrom, length=seq.size)
    header.formats.add("GT", 1, "String", "Genotype")
    header.formats.add("AD", "R", "Integer", "Reads supporting each allele (REF, ALT)")
    header.formats.add("DP", 1, "Integer", "Read depth")
    for name in columns:
        header.add_sample(name)
    names = list(genome.seqs)
    with pysam.VariantFile(str(path), "wz" if path.suffix == ".gz" else "w", header=header) as out:
        for k in range(snvs.pos.size):
            record = out.new_record(
                contig=names[snvs.contig[k]],
                start=int(snvs.pos[k]),
                alleles=(chr(snvs.ref[k]), chr(snvs.alt[k])),
                qual=50,
                filter="PASS",
            )
            for name, (depth, alt) in columns.items():
                call = record.samples[name]
                call["GT"] = (0, 1)
                call["AD"] = (int(depth[k] - alt[k]), int(alt[k]))
                call["DP"] = int(depth[k])
            out.write(record)
    if path.suffix == ".gz":
        pysam.tabix_index(str(path), preset="vcf", force=True)


def main(argv: list[str] | None = None) -> int:
    """Write the seed-like cohort into OUTDIR and print its paths."""
    parser = argparse.ArgumentParser(
        prog="python -m scaffold.simulate",
        description="Write a synthetic exome cohort named like the seed example request.",
    )
    parser.add_argument("outdir", type=Path)
    parser.add_argument("--reads", type=int, default=200_000, help="reads per sample")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--chrom-length",
        type=int,
        default=AUTOSOME_LENGTH,
        help="autosome length (chrX is 3/4 of it, chrY 1/4)",
    )
    parser.add_argument("--assay", choices=ASSAYS, default="hybrid",
                        help="how the samples were sequenced (wgs: no BED)")
    args = parser.parse_args(argv)
    cohort = seed_like_cohort(args.outdir, args.reads, args.seed, args.chrom_length, args.assay)
    print(f"ref\t{cohort.ref}")
    if cohort.bed is not None:
        print(f"bed\t{cohort.bed}")
    print(f"annotation\t{cohort.annotation}")
    for spec in cohort.samples:
        role = "control" if spec.control else "experimental"
        print(f"{role}\t{cohort.bams[spec.name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
