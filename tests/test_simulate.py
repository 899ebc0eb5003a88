"""Tests of the synthetic cohort generator (real samtools and pysam)."""

import csv
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pysam
import pytest
from skgenome import tabio

from scaffold.simulate import (
    AMPLICON_SIZE,
    TARGET_FLANK,
    Cohort,
    Event,
    SampleSpec,
    default_events,
    make_cohort,
    seed_like_cohort,
    standard_samples,
    tumour_normal_samples,
)

ROOT = Path(__file__).resolve().parents[1]
SMALL_CHROM = 300_000  # as in conftest's small_cohort


def _target_reads(bam: pysam.AlignmentFile, targets: list[tuple[str, int, int]]) -> float:
    """Non-duplicate reads overlapping the targets, per bp of target ± flank."""
    reads = sum(bam.count(c, s, e) for c, s, e in targets)
    return reads / sum(e - s + 2 * TARGET_FLANK for _, s, e in targets)


def _targets(cohort: Cohort) -> list[tuple[str, int, int]]:
    with open(cohort.bed) as f:
        return [(c, int(s), int(e)) for c, s, e, _ in (line.split("\t") for line in f)]


def test_bams_are_sorted_duplicate_marked_and_indexed(small_cohort: Cohort) -> None:
    assert [s.name for s in small_cohort.samples] == ["Control_M", "Control_F", "Sample_1"]
    for name, path in small_cohort.bams.items():
        assert path.name == f"{name}.bam"
        subprocess.run(["samtools", "quickcheck", str(path)], check=True)
        assert path.with_name(f"{path.name}.bai").is_file()
        assert not list(path.parent.glob(".*.tmp"))
        with pysam.AlignmentFile(path) as bam:
            header = bam.header.to_dict()
            assert header["HD"]["SO"] == "coordinate"
            assert any("samtools markdup" in pg.get("CL", "") for pg in header["PG"])
            assert bam.check_index()
            reads = list(bam.fetch(until_eof=True))
        assert 39_000 <= len(reads) <= 40_000
        keys = [(r.reference_id, r.reference_start) for r in reads]
        assert keys == sorted(keys)
        assert all(r.mapping_quality == 60 and r.is_proper_pair for r in reads)
        dups = sum(r.is_duplicate for r in reads) / len(reads)
        assert 0.02 < dups < 0.10


def test_reference_targets_and_annotation(small_cohort: Cohort) -> None:
    with pysam.FastaFile(str(small_cohort.ref)) as fasta:
        lengths = dict(zip(fasta.references, fasta.lengths, strict=True))
        assert "N" * 1000 in fasta.fetch("chr1", 0, 2000)
    assert lengths == {
        "chr1": SMALL_CHROM, "chr2": SMALL_CHROM, "chr3": SMALL_CHROM, "chr4": SMALL_CHROM,
        "chrX": SMALL_CHROM * 3 // 4, "chrY": SMALL_CHROM // 4,
    }  # fmt: skip
    targets = _targets(small_cohort)
    assert {c for c, _, _ in targets} == set(lengths)
    assert all(150 <= e - s <= 300 for _, s, e in targets)
    gff = small_cohort.annotation.read_text().splitlines()
    assert gff[0] == "##gff-version 3"
    gene = next(line for line in gff if "\tgene\t" in line)
    assert gene.index("gene_id=ENSG") < gene.index("gene_name=GENE1")
    genes = sorted(small_cohort.genes.values())
    for chrom, start, end in targets:  # every target lies in a gene
        assert any(c == chrom and s <= start and end <= e for c, s, e in genes)


def test_depth_follows_planted_events(small_cohort: Cohort) -> None:
    deletion, gain = default_events(SMALL_CHROM)
    targets = _targets(small_cohort)
    with pysam.AlignmentFile(small_cohort.bams["Sample_1"]) as bam:
        for event, expected in ((deletion, 0.5), (gain, 1.5)):
            on_chrom = [t for t in targets if t[0] == event.chrom]
            inside = [t for t in on_chrom if event.start <= t[1] and t[2] <= event.end]
            outside = [t for t in on_chrom if t[2] <= event.start or t[1] >= event.end]
            assert len(inside) >= 15
            ratio = _target_reads(bam, inside) / _target_reads(bam, outside)
            assert ratio == pytest.approx(expected, abs=0.12)


def test_sex_chromosome_depth(small_cohort: Cohort) -> None:
    targets = _targets(small_cohort)
    autosomal = [t for t in targets if t[0] == "chr1"]
    chrx = [t for t in targets if t[0] == "chrX"]
    relative = {}
    for name in ("Control_M", "Control_F"):
        with pysam.AlignmentFile(small_cohort.bams[name]) as bam:
            relative[name] = _target_reads(bam, chrx) / _target_reads(bam, autosomal)
            relative[name, "Y"] = bam.count("chrY")
    assert relative["Control_M"] / relative["Control_F"] == pytest.approx(0.5, abs=0.08)
    assert relative["Control_F", "Y"] == 0 < relative["Control_M", "Y"]


def _records(cohort: Cohort) -> list[str]:
    return [pysam.view("--no-PG", str(p)) for p in cohort.bams.values()]


def test_deterministic_for_a_seed(tmp_path) -> None:
    samples = [SampleSpec("S", "female", (Event("chr1", 20_000, 40_000, 3),))]
    a, b, c = (
        make_cohort(tmp_path / d, samples, reads_per_sample=4_000, seed=s, chrom_length=60_000)
        for d, s in (("a", 3), ("b", 3), ("c", 4))
    )
    assert a.ref.read_bytes() == b.ref.read_bytes() != c.ref.read_bytes()
    assert a.annotation.read_text() == b.annotation.read_text()
    assert _records(a) == _records(b) != _records(c)


def test_rejects_bad_specs(tmp_path) -> None:
    with pytest.raises(ValueError, match="outside the genome"):
        make_cohort(tmp_path, [SampleSpec("S", "male", (Event("chr9", 0, 10, 1),))])
    with pytest.raises(ValueError, match="sex"):
        make_cohort(tmp_path, [SampleSpec("S", "M")])


def test_seed_like_cohort_names(tmp_path) -> None:
    cohort = seed_like_cohort(tmp_path, reads_per_sample=2_000, chrom_length=60_000)
    assert (cohort.ref.name, cohort.bed.name, cohort.annotation.name) == (
        "hg38.filtered.fa", "tEXOME2_ext50.bed", "gencode.v29.annotation.gff3",
    )  # fmt: skip
    assert [p.name for p in cohort.experimental] == ["Son_S2_ALL.sort.mkdup.bam"]
    assert [p.name for p in cohort.controls] == [
        "Father_S5_ALL.sort.mkdup.bam", "Mather_S1_ALL.sort.mkdup.bam",
    ]  # fmt: skip


def test_command_line(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scaffold.simulate", str(tmp_path), "--reads", "2000",
         "--seed", "5", "--chrom-length", "60000"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert f"experimental\t{tmp_path}/Son_S2_ALL.sort.mkdup.bam" in out
    assert (tmp_path / "Mather_S1_ALL.sort.mkdup.bam.bai").is_file()


# --- tumours, purity and VCFs -------------------------------------------------------------------

TN_CHROM = 150_000


@pytest.fixture(scope="module")
def tn_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    """Tumour_1 (male, purity 0.7) and Tumour_2 (female, 0.5), each with its matched normal;
    ~100x on target so that allele fractions can be measured."""
    return make_cohort(
        tmp_path_factory.mktemp("tn"),
        tumour_normal_samples(TN_CHROM),
        reads_per_sample=150_000,
        seed=11,
        chrom_length=TN_CHROM,
        vcf_suffix=".vcf",
    )


def _minor_fraction(purity: float, copies: int, minor: int) -> float:
    """The brief's formula: BAF = (p*minor + (1-p)*1) / (p*cn + (1-p)*2)."""
    return (purity * minor + (1 - purity)) / (purity * copies + (1 - purity) * 2)


def test_vcf_allele_fractions_follow_copies_minor_and_purity(tn_cohort: Cohort) -> None:
    deletion, gain, loh = tumour_normal_samples(TN_CHROM)[1].events
    neutral = Event("chr1", 0, TN_CHROM, 2)
    for spec in (s for s in tn_cohort.samples if not s.control):
        snvs = tabio.read(
            str(tn_cohort.vcfs[spec.name]), "vcf", sample_id=spec.name, normal_id=spec.normal
        ).data
        assert len(snvs) > 300
        for event, minor in ((deletion, 0), (gain, 1), (loh, 0), (neutral, 1)):
            inside = snvs[
                (snvs.chromosome == event.chrom)
                & (snvs.start >= event.start)
                & (snvs.end <= event.end)
            ]
            assert len(inside) >= 12, event
            mirrored = np.minimum(inside.alt_freq, 1 - inside.alt_freq)
            expected = _minor_fraction(spec.purity, event.copies, minor)
            assert mirrored.median() == pytest.approx(expected, abs=0.05), (spec.name, event)
            assert inside.n_alt_freq.mean() == pytest.approx(0.5, abs=0.04)  # the normal
        # a male's chrX/chrY are single-copy: no heterozygous SNVs there
        sex_chroms = set(snvs.chromosome) & {"chrX", "chrY"}
        assert sex_chroms == ({"chrX"} if spec.sex == "female" else set())


def test_vcf_depth_is_the_bams(tn_cohort: Cohort) -> None:
    for tumour in ("Tumour_1", "Tumour_2"):
        with pysam.VariantFile(str(tn_cohort.vcfs[tumour])) as vcf:
            records = list(vcf)
            columns = list(vcf.header.samples)
        assert columns == [tumour, tumour.replace("Tumour", "Normal")]
        for column in columns:
            with pysam.AlignmentFile(tn_cohort.bams[column]) as bam:
                for r in records:
                    reads = [a.is_duplicate for a in bam.fetch(r.chrom, r.start, r.stop)]
                    depth = r.samples[column]["DP"]
                    # the simulator leaves out the copies it planted; markdup also marks chance
                    # twins among the rest
                    assert reads.count(False) <= depth <= len(reads)
                    assert sum(r.samples[column]["AD"]) == depth
            assert np.mean([r.samples[column]["DP"] for r in records]) > 50


def test_purity_dilutes_depth(tn_cohort: Cohort) -> None:
    deletion, gain, _ = tumour_normal_samples(TN_CHROM)[1].events
    targets = _targets(tn_cohort)
    for name, purity in (("Tumour_1", 0.7), ("Tumour_2", 0.5)):
        with pysam.AlignmentFile(tn_cohort.bams[name]) as bam:
            for event in (deletion, gain):
                on_chrom = [t for t in targets if t[0] == event.chrom]
                inside = [t for t in on_chrom if event.start <= t[1] and t[2] <= event.end]
                outside = [t for t in on_chrom if t[2] <= event.start or t[1] >= event.end]
                ratio = _target_reads(bam, inside) / _target_reads(bam, outside)
                expected = (purity * event.copies + (1 - purity) * 2) / 2
                assert ratio == pytest.approx(expected, abs=0.08), (name, event)


def _shared_germline_samples() -> list[SampleSpec]:
    return [
        SampleSpec("Normal_A", "female", control=True),
        SampleSpec("Tumour_A1", "female", (Event("chr1", 20_000, 40_000, 2, minor=0),),
                   normal="Normal_A"),
        SampleSpec("Tumour_A2", "female", purity=0.4, normal="Normal_A", vcf_sample="TUMOUR"),
        SampleSpec("Solo", "male", (Event("chr2", 20_000, 40_000, 3),)),
    ]  # fmt: skip


def _vcf_rows(path: Path) -> list[tuple]:
    with pysam.VariantFile(str(path)) as vcf:
        return [(r.chrom, r.pos, r.ref, r.alts, *(tuple(s.values()) for s in r.samples.values()))
                for r in vcf]  # fmt: skip


def test_bgzipped_vcfs_sorted_indexed_and_shared_by_an_individual(tmp_path) -> None:
    cohort = make_cohort(tmp_path, _shared_germline_samples(), reads_per_sample=6_000, seed=2,
                         chrom_length=60_000, vcf_suffix=".vcf.gz")  # fmt: skip
    assert sorted(cohort.vcfs) == ["Solo", "Tumour_A1", "Tumour_A2"]
    with pysam.FastaFile(str(cohort.ref)) as fasta:
        contigs = dict(zip(fasta.references, fasta.lengths, strict=True))
    targets = _targets(cohort)
    for name, path in cohort.vcfs.items():
        assert path.name == f"{name}.vcf.gz" and Path(f"{path}.tbi").is_file()
        with pysam.VariantFile(str(path)) as vcf:
            assert {c: vcf.header.contigs[c].length for c in vcf.header.contigs} == contigs
            records = list(vcf)
            order = list(contigs)
            keys = [(order.index(r.chrom), r.pos) for r in records]
            assert keys == sorted(set(keys))
            assert list(vcf.fetch("chr3", 10_000, 30_000))  # the index works
        with pysam.FastaFile(str(cohort.ref)) as fasta:
            assert all(fasta.fetch(r.chrom, r.start, r.stop) == r.ref != r.alts[0]
                       for r in records)  # fmt: skip
        assert all(any(c == r.chrom and s <= r.start < e for c, s, e in targets) for r in records)
    # the tumours of one individual share its SNVs, and the normal's column is the same
    a1, a2 = _vcf_rows(cohort.vcfs["Tumour_A1"]), _vcf_rows(cohort.vcfs["Tumour_A2"])
    assert [r[:4] for r in a1] == [r[:4] for r in a2]
    assert [r[5] for r in a1] == [r[5] for r in a2]  # Normal_A's GT, AD, DP
    assert [r[:2] for r in _vcf_rows(cohort.vcfs["Solo"])] != [r[:2] for r in a1]
    for name, columns in (("Solo", ["Solo"]), ("Tumour_A1", ["Tumour_A1", "Normal_A"]),
                          ("Tumour_A2", ["TUMOUR", "Normal_A"])):
        with pysam.VariantFile(str(cohort.vcfs[name])) as vcf:
            assert list(vcf.header.samples) == columns
    # CNVkit's reader takes an unmatched tumour too
    solo = tabio.read(str(cohort.vcfs["Solo"]), "vcf", sample_id="Solo").data
    assert len(solo) == len(_vcf_rows(cohort.vcfs["Solo"])) and (solo.zygosity == 0.5).all()


def test_vcfs_leave_the_bams_alone_and_follow_the_seed(tmp_path) -> None:
    samples = _shared_germline_samples()
    kwargs = {"reads_per_sample": 4_000, "chrom_length": 60_000}
    plain = make_cohort(tmp_path / "plain", samples, seed=3, **kwargs)
    a, b = (make_cohort(tmp_path / d, samples, seed=3, vcf_suffix=".vcf", **kwargs)
            for d in ("a", "b"))  # fmt: skip
    c = make_cohort(tmp_path / "c", samples, seed=4, vcf_suffix=".vcf", **kwargs)
    assert not plain.vcfs and not list(plain.ref.parent.glob("*.vcf*"))
    assert _records(plain) == _records(a)
    assert all(a.vcfs[n].read_bytes() == b.vcfs[n].read_bytes() for n in a.vcfs)
    assert _vcf_rows(a.vcfs["Solo"]) != _vcf_rows(c.vcfs["Solo"])


def test_request_samples_state_what_was_planted(tmp_path) -> None:
    cohort = make_cohort(tmp_path, _shared_germline_samples(), reads_per_sample=2_000,
                         chrom_length=60_000, vcf_suffix=".vcf")  # fmt: skip
    rows = cohort.request_samples(wrong_sex=["Tumour_A2"])
    assert rows[0] == {"id": "Normal_A", "bam": str(cohort.bams["Normal_A"]),
                       "role": "control", "sex": "female"}  # fmt: skip
    assert rows[2] == {
        "id": "Tumour_A2", "bam": str(cohort.bams["Tumour_A2"]), "role": "experimental",
        "sex": "male", "purity": 0.4, "vcf": str(cohort.vcfs["Tumour_A2"]),
        "vcf_sample": "TUMOUR", "normal": "Normal_A",
    }  # fmt: skip
    assert [r["sex"] for r in cohort.request_samples()] == [s.sex for s in cohort.samples]
    sheet = cohort.write_samplesheet(tmp_path / "sheet.tsv", wrong_sex=["Solo"])
    with open(sheet, newline="") as f:
        table = list(csv.DictReader(f, delimiter="\t"))
    assert [r["sample"] for r in table] == ["Normal_A", "Tumour_A1", "Tumour_A2", "Solo"]
    assert table[3]["sex"] == "female" and table[1]["purity"] == "" and table[2]["purity"] == "0.4"
    assert table[1]["normal"] == "Normal_A" and table[1]["vcf"] == str(cohort.vcfs["Tumour_A1"])
    assert (table[1]["vcf_sample"], table[2]["vcf_sample"]) == ("", "TUMOUR")


def test_rejects_bad_tumour_specs(tmp_path) -> None:
    normal = SampleSpec("N", "male", control=True)
    bad = {
        "purity": [SampleSpec("T", "male", purity=0)],
        "normal 'N' must be a control": [normal, SampleSpec("T", "female", normal="N")],
        "normal 'X' must be": [SampleSpec("T", "male", normal="X")],
        "minor": [SampleSpec("T", "male", (Event("chr1", 0, 10, 2, minor=2),))],
        "vcf_sample": [normal, SampleSpec("T", "male", normal="N", vcf_sample="N")],
    }
    for message, samples in bad.items():
        with pytest.raises(ValueError, match=message):
            make_cohort(tmp_path, samples)
    with pytest.raises(ValueError, match="vcf_suffix"):
        make_cohort(tmp_path, [normal], vcf_suffix=".bcf")


def test_cnvkit_calls_the_planted_alleles_from_the_vcf(tn_cohort: Cohort, tmp_path) -> None:
    """CNVkit, run by hand on Tumour_1 (purity 0.7) against its normal, with the VCF and the
    purity: the deletion is 1 copy of one allele, the gain 2 + 1 (its BAF, rescaled for purity,
    1/3 from 1), chr1 1 + 1; segmented with the VCF too, the copy-neutral LOH is 2 + 0."""
    cnvkit = Path(sys.executable).with_name("cnvkit.py")
    out, c = tmp_path / "out", tn_cohort
    vcf = ["-v", c.vcfs["Tumour_1"], "-i", "Tumour_1", "-n", "Normal_1"]
    call = ["--purity", "0.7", "-x", "male", "-m", "clonal"]
    for command in (
        ["batch", c.bams["Tumour_1"], "-n", c.bams["Normal_1"], "-t", c.bed, "-f", c.ref,
         "-d", out, "-p", "1"],
        ["call", out / "Tumour_1.cns", *vcf, *call, "-o", tmp_path / "depth.call.cns"],
        ["segment", out / "Tumour_1.cnr", *vcf, "-o", tmp_path / "vcf.cns"],
        ["call", tmp_path / "vcf.cns", *vcf, *call, "-o", tmp_path / "vcf.call.cns"],
    ):  # fmt: skip
        subprocess.run([cnvkit, *command], check=True, capture_output=True)
    deletion, gain, loh = tumour_normal_samples(TN_CHROM)[1].events
    neutral = Event("chr1", 0, TN_CHROM, 2)
    # only chr4 is read from `segment -v`: CNVkit 0.9.14 stretches each segment of a chromosome
    # of several to the whole chromosome there (etal/cnvkit#1131)
    for event, alleles, called in (
        (deletion, (1, 0), "depth"), (gain, (2, 1), "depth"), (neutral, (1, 1), "depth"),
        (loh, (2, 0), "vcf"),
    ):  # fmt: skip
        segments = tabio.read(str(tmp_path / f"{called}.call.cns")).data
        middle = (event.start + event.end) // 2
        row = segments[(segments.chromosome == event.chrom) & (segments.start <= middle)
                       & (segments.end > middle)].iloc[0]  # fmt: skip
        assert (row.cn, row.cn1, row.cn2) == (event.copies, *alleles), event
        if event == gain:
            assert row.baf == pytest.approx(2 / 3, abs=0.05)


# --- assays: amplicon panels and whole genomes ---------------------------------------------------


def _hybrid_digest(root: Path) -> str:
    """SHA-256 of a small hybrid cohort's files: FASTA, BED, GFF3, VCF and the BAMs' SAM text
    (headers but for @PG lines, which name the temporary path and the samtools version)."""
    cohort = make_cohort(root, tumour_normal_samples(60_000, (0.7,)), reads_per_sample=4_000,
                         chrom_length=60_000, seed=7, vcf_suffix=".vcf", threads=2)  # fmt: skip
    digest = hashlib.sha256()
    for path in (cohort.ref, cohort.bed, cohort.annotation, *cohort.vcfs.values()):
        digest.update(path.read_bytes())
    for path in cohort.bams.values():
        sam = pysam.view("--no-PG", "-h", str(path)).splitlines(keepends=True)
        digest.update("".join(line for line in sam if not line.startswith("@PG")).encode())
    return digest.hexdigest()


def test_hybrid_is_the_cohort_of_before_assays(tmp_path) -> None:
    """The default assay writes, for a seed, what the simulator wrote before assays existed
    (the digest was taken with that code)."""
    assert _hybrid_digest(tmp_path) == (
        "c07257088b36a41e95ca9cc865c1974cf3799c060a3656094c2eae2e00e028b9"
    )


@pytest.fixture(scope="module")
def amplicon_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    return make_cohort(tmp_path_factory.mktemp("amplicon"), standard_samples(SMALL_CHROM, 1),
                       reads_per_sample=40_000, seed=7, chrom_length=SMALL_CHROM,
                       assay="amplicon", vcf_suffix=".vcf")  # fmt: skip


@pytest.fixture(scope="module")
def wgs_cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    return make_cohort(tmp_path_factory.mktemp("wgs"), standard_samples(SMALL_CHROM, 1),
                       reads_per_sample=40_000, seed=7, chrom_length=SMALL_CHROM, assay="wgs")


def _header(path: Path) -> dict:
    with pysam.AlignmentFile(path) as bam:
        return bam.header.to_dict()


def test_amplicon_panel_tiles_gene_like_clusters(amplicon_cohort: Cohort) -> None:
    amplicons = _targets(amplicon_cohort)
    assert 300 <= len(amplicons) <= 700
    assert all(AMPLICON_SIZE[0] <= e - s <= AMPLICON_SIZE[1] for _, s, e in amplicons)
    for (c1, _, e1), (c2, s2, _) in zip(amplicons, amplicons[1:], strict=False):
        assert c1 != c2 or s2 >= e1  # sorted, not overlapping
    genes = list(amplicon_cohort.genes.values())
    inside = [[a for a in amplicons if a[0] == c and s <= a[1] and a[2] <= e] for c, s, e in genes]
    assert all(4 <= len(group) <= 12 for group in inside)  # one gene per cluster
    assert sum(map(len, inside)) == len(amplicons)
    assert {c for c, _, _ in amplicons} == {f"chr{i}" for i in (1, 2, 3, 4, "X", "Y")}
    assert amplicon_cohort.request("out")["method"] == "amplicon"


def test_amplicon_reads_span_their_amplicon_unmarked(amplicon_cohort: Cohort) -> None:
    ends = {(c, s): e for c, s, e in _targets(amplicon_cohort)}
    starts = {(c, e): s for (c, s), e in ends.items()}
    for path in amplicon_cohort.bams.values():
        subprocess.run(["samtools", "quickcheck", str(path)], check=True)
        header = _header(path)
        assert header["HD"]["SO"] == "coordinate"
        assert [pg["ID"] for pg in header["PG"]] == ["simulate"]  # no markdup
        with pysam.AlignmentFile(path) as bam:
            assert bam.check_index()
            reads = list(bam.fetch(until_eof=True))
        assert len(reads) == 40_000 and not any(r.is_duplicate for r in reads)
        for r in reads:  # the left mate starts where its amplicon does, the right one ends there
            key = (r.reference_name, r.reference_start if r.template_length > 0
                   else r.reference_end)  # fmt: skip
            size = (ends[key] - key[1]) if r.template_length > 0 else (key[1] - starts[key])
            assert abs(r.template_length) == size


def test_amplicon_depth_follows_planted_events(amplicon_cohort: Cohort) -> None:
    deletion, gain = default_events(SMALL_CHROM)
    amplicons = _targets(amplicon_cohort)

    def per_amplicon(bam: pysam.AlignmentFile, rows: list) -> np.ndarray:
        return np.array([bam.count(c, s, e) for c, s, e in rows], dtype=float)

    with (pysam.AlignmentFile(amplicon_cohort.bams["Sample_1"]) as sample,
          pysam.AlignmentFile(amplicon_cohort.bams["Control_M"]) as control):  # fmt: skip
        for event, expected in ((deletion, 0.5), (gain, 1.5)):
            on = [a for a in amplicons if a[0] == event.chrom]
            inside = [a for a in on if event.start <= a[1] and a[2] <= event.end]
            outside = [a for a in on if a[2] <= event.start or a[1] >= event.end]
            assert len(inside) >= 10
            # yields differ per amplicon (alike in every sample): the control normalises them
            ratio = {
                name: np.median(per_amplicon(sample, rows) / per_amplicon(control, rows))
                for name, rows in (("in", inside), ("out", outside))
            }
            assert ratio["in"] / ratio["out"] == pytest.approx(expected, abs=0.15)


def test_wgs_cohort_has_no_bed_and_uniform_marked_depth(wgs_cohort: Cohort) -> None:
    assert wgs_cohort.bed is None and not list(wgs_cohort.ref.parent.glob("*.bed"))
    request = wgs_cohort.request("out", autobin=True)
    assert "bed" not in request and request["method"] == "wgs" and request["autobin"] is True
    assert wgs_cohort.request("out", method="hybrid", bed="t.bed")["bed"] == "t.bed"
    assert "method" not in wgs_cohort.request("out", method="hybrid")
    assert wgs_cohort.annotation.is_file() and wgs_cohort.genes
    bed = wgs_cohort.write_genes_bed(wgs_cohort.ref.parent / "genes.bed")
    rows = [line.split("\t") for line in bed.read_text().splitlines()]
    chrom, start, end = wgs_cohort.genes["GENE1"]
    assert len(rows) == len(wgs_cohort.genes)
    assert rows[0] == [chrom, str(start), str(end), "GENE1"]
    deletion, gain = default_events(SMALL_CHROM)
    for name, path in wgs_cohort.bams.items():
        assert any("samtools markdup" in pg.get("CL", "") for pg in _header(path)["PG"])
        with pysam.AlignmentFile(path) as bam:
            reads = list(bam.fetch(until_eof=True))
            assert 0.02 < sum(r.is_duplicate for r in reads) / len(reads) < 0.05

            def density(chrom: str, start: int, end: int, bam=bam) -> float:
                return bam.count(chrom, start, end) / (end - start)

            # uniform: equal windows of chr1 away from its N runs hold alike counts
            windows = [density("chr1", s, s + 30_000) for s in (10_000, 40_000, 180_000, 220_000)]
            assert max(windows) / min(windows) < 1.2
            if name == "Sample_1":
                for event, expected in ((deletion, 0.5), (gain, 1.5)):
                    inside = density(event.chrom, event.start, event.end)
                    before = density(event.chrom, 10_000, min(event.start, 140_000))  # no N
                    assert inside / before == pytest.approx(expected, abs=0.1)
            elif name == "Control_F":
                assert bam.count("chrY") == 0


def test_unmarked_bams_on_request(tmp_path) -> None:
    """``mark_duplicates=False``: the duplicates are there, but neither flagged nor recorded."""
    cohort = make_cohort(tmp_path, [SampleSpec("S", "female")], reads_per_sample=4_000,
                         chrom_length=60_000, mark_duplicates=False)  # fmt: skip
    assert [pg["ID"] for pg in _header(cohort.bams["S"])["PG"]] == ["simulate"]
    with pysam.AlignmentFile(cohort.bams["S"]) as bam:
        assert bam.check_index() and not any(r.is_duplicate for r in bam.fetch(until_eof=True))


def test_rejects_bad_assays(tmp_path) -> None:
    with pytest.raises(ValueError, match="assay must be one of hybrid, amplicon, wgs"):
        make_cohort(tmp_path, [SampleSpec("S", "male")], assay="exome")
    with pytest.raises(ValueError, match="amplicon reads are at most 150 bp"):
        make_cohort(tmp_path, [SampleSpec("S", "male")], assay="amplicon", read_length=151)


def test_command_line_assays(tmp_path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "scaffold.simulate", str(tmp_path), "--reads", "2000",
         "--chrom-length", "60000", "--assay", "wgs"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert out.startswith(f"ref\t{tmp_path}/hg38.filtered.fa\nannotation\t") and "bed" not in out


def _target_spread(bam_path: Path, targets: list[tuple[str, int, int]]) -> float:
    """Coefficient of variation of the reads on each target (chrX and chrY aside)."""
    with pysam.AlignmentFile(bam_path) as bam:
        counts = np.array([bam.count(c, s, e) for c, s, e in targets if c not in ("chrX", "chrY")])
    return float(counts.std() / counts.mean())


@pytest.mark.parametrize("assay", ["hybrid", "amplicon"])
def test_noise_spreads_one_samples_target_depth(tmp_path, assay) -> None:
    """A noisy sample's targets differ in depth far more than a quiet one's; its noise leaves
    the other samples as they were (noise 0 writes what the simulator wrote before: the digest
    test above)."""
    kwargs = {"reads_per_sample": 40_000, "seed": 7, "chrom_length": SMALL_CHROM, "assay": assay}
    quiet = [SampleSpec("Quiet", "female"), SampleSpec("Noisy", "female")]
    noisy = [SampleSpec("Quiet", "female"), SampleSpec("Noisy", "female", noise=0.5)]
    a = make_cohort(tmp_path / "quiet", quiet, **kwargs)
    b = make_cohort(tmp_path / "noisy", noisy, **kwargs)
    targets = _targets(b)
    spread = {name: _target_spread(b.bams[name], targets) for name in ("Quiet", "Noisy")}
    assert spread["Noisy"] > 2 * spread["Quiet"], spread
    assert _target_spread(a.bams["Noisy"], targets) < 1.2 * spread["Quiet"]
    assert _records(a)[0] == _records(b)[0]  # Quiet's reads
