"""Benchmark at exome scale: `cnvkit-nf run` against `cnvkit.py batch` on the same bins, cold
and warm, side by side in one call.

The cohort: hg38's 24 primary contigs at their lengths (a 3.1 Gb FASTA with N runs where hg38
has its centromeres, acrocentric short arms and telomeres), ~200,000 exon-like targets of
100-300 bp clustered in genes and spread over the contigs by length, 2 controls and 3 tumours
of 6M reads (85% on and near the targets, the rest sparse over the genome), the tumours with a
heterozygous deletion on chr2 and a gain on chr3. It is generated with the simulator's pieces
(`scaffold/simulate.py`: random sequence per GC block, its BED, GFF3 and BAM writers) and cached
in `benchmarks/.data/exome-*`.

Timed one after the other, never concurrently (bench_batch.py's helpers):
1. cold: `cnvkit-nf --state-dir FRESH run request.json` (the seed's options, coverage -p = CPUs);
2. `cnvkit.py access` + `cnvkit.py batch --targets <job>/reference/targets.bed --antitargets
   <job>/reference/antitargets.bed` (the job's bins) + genemetrics per tumour + sex;
3. unless --skip-lab: batch as a lab runs it: access + batch on the exome BED with its own bin
   sizes (autobin) + genemetrics + sex;
4. unless --skip-warm: a second job in the cold job's state dir on the first tumour, reusing
   the kept reference, against `batch TUMOUR -r reference.cnn` (step 2's) + genemetrics.

A measurement, not a test: it exits 1 only when a command fails.
Usage: .venv/bin/python benchmarks/bench_exome.py [--scale 1] [--samples 5] [--reads 6000000]
       [--targets 200000] [--keep] [--skip-warm] [--skip-lab]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import zlib
from functools import partial
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_batch as bb  # noqa: E402
from bench_batch import ROOT  # noqa: E402

from cnvkit_nf.launch.runner import disk_bytes  # noqa: E402
from cnvkit_nf.state.layout import Results, StateDir  # noqa: E402
from scaffold.simulate import (  # noqa: E402
    GC_BLOCK,
    Cohort,
    _fragments,
    _Genome,
    _validate,
    _write_bam,
    _write_bed,
    _write_fasta,
    _write_gff3,
    standard_samples,
)

RESULTS = ROOT / "benchmarks" / "results" / "exome-latest.json"
# GRCh38 primary chromosome lengths, as UCSC's hg38.chrom.sizes gives them.
HG38 = {
    "chr1": 248_956_422, "chr2": 242_193_529, "chr3": 198_295_559, "chr4": 190_214_555,
    "chr5": 181_538_259, "chr6": 170_805_979, "chr7": 159_345_973, "chr8": 145_138_636,
    "chr9": 138_394_717, "chr10": 133_797_422, "chr11": 135_086_622, "chr12": 133_275_309,
    "chr13": 114_364_328, "chr14": 107_043_718, "chr15": 101_991_189, "chr16": 90_338_345,
    "chr17": 83_257_441, "chr18": 80_373_285, "chr19": 58_617_616, "chr20": 64_444_167,
    "chr21": 46_709_983, "chr22": 50_818_468, "chrX": 156_040_895, "chrY": 57_227_415,
}  # fmt: skip
# Where the N runs go, roughly as in hg38 (Mb): each centromere (the merged acen bands of UCSC's
# hg38 cytoBand), the acrocentric short arms and chrY's heterochromatic q12 (approximate); plus
# TELOMERE bp of N at each end. hg38's shape, not its exact gaps: `access` has runs to find.
GAPS_MB = {
    "chr1": [(121.7, 125.1)], "chr2": [(91.8, 96.0)], "chr3": [(87.8, 94.0)],
    "chr4": [(48.2, 51.8)], "chr5": [(46.1, 51.4)], "chr6": [(58.5, 62.6)],
    "chr7": [(58.1, 62.1)], "chr8": [(43.2, 47.2)], "chr9": [(42.2, 45.5)],
    "chr10": [(38.0, 41.6)], "chr11": [(51.0, 55.8)], "chr12": [(33.2, 37.8)],
    "chr13": [(0, 18.9)], "chr14": [(0, 18.2)], "chr15": [(0, 20.5)], "chr16": [(35.3, 38.4)],
    "chr17": [(22.7, 27.4)], "chr18": [(15.4, 21.5)], "chr19": [(24.2, 28.1)],
    "chr20": [(25.7, 30.4)], "chr21": [(0, 13.0)], "chr22": [(0, 17.4)],
    "chrX": [(58.1, 63.8)], "chrY": [(10.3, 10.6), (26.6, 56.9)],
}  # fmt: skip
TELOMERE = 10_000
EXONS_PER_GENE = 10  # mean; at least 1 (1 + Poisson)
EXON_SIZE = (100, 300)  # inclusive
INTRON_SIZE = (1_000, 10_000)
SEQUENCE_BLOCK = 1_000 * GC_BLOCK  # bases drawn at once
GC_LEVELS = np.linspace(0.35, 0.60, 26)  # as the simulator's GC range, per GC_BLOCK
# The bases of one random byte at each GC level: C, G below gc (half each), then A and T.
_u = (np.arange(256) + 0.5) / 256
_BASES = np.where(
    _u < GC_LEVELS[:, None],
    np.where(_u < GC_LEVELS[:, None] / 2, ord("C"), ord("G")),
    np.where(_u < (1 + GC_LEVELS[:, None]) / 2, ord("A"), ord("T")),
).astype(np.uint8)
# batch as a lab runs it: the seed's essentials, bin sizes left to batch (autobin).
LAB_OPTIONS = "-q 10 --segment-method cbs --drop-low-coverage".split()
READ_LENGTH = 100


def sequence(rng: np.random.Generator, n: int, gaps: list[tuple[int, int]]) -> np.ndarray:
    """`n` random bases, GC varying per GC_BLOCK, N in `gaps`; drawn a block at a time, one
    byte per base, so a 3.1 Gb genome takes a minute or so, not hours."""
    levels = rng.integers(0, len(GC_LEVELS), n // GC_BLOCK + 1, dtype=np.uint8)
    seq = np.empty(n, np.uint8)
    for start in range(0, n, SEQUENCE_BLOCK):
        end = min(n, start + SEQUENCE_BLOCK)
        level = np.repeat(levels[start // GC_BLOCK : -(-end // GC_BLOCK)], GC_BLOCK)
        seq[start:end] = _BASES[level[: end - start], rng.integers(0, 256, end - start, np.uint8)]
    for start, end in gaps:
        seq[start:end] = ord("N")
    return seq


def exome_targets(
    rng: np.random.Generator, n: int, genes: int, gaps: list[tuple[int, int]]
) -> tuple[np.ndarray, list[int]]:
    """Exon-like targets of `genes` genes laid out along a contig of `n` bp with random
    intergenic spaces: (starts, ends) rows and each kept gene's exon count. Genes within 1 kb
    of a gap are left out."""
    exons = 1 + rng.poisson(EXONS_PER_GENE - 1, genes)
    total = int(exons.sum())
    size = rng.integers(EXON_SIZE[0], EXON_SIZE[1] + 1, total)
    first, last = np.cumsum(exons) - exons, np.cumsum(exons) - 1
    spacer = rng.integers(INTRON_SIZE[0], INTRON_SIZE[1] + 1, total)
    spacer[first] = 0
    free = n - int(size.sum() + spacer.sum())
    if free < genes:
        raise ValueError(f"{genes} genes do not fit in {n:,} bp: fewer targets or more genome")
    spacer[first] = np.diff(np.sort(rng.integers(0, free, genes)), prepend=0)
    starts = np.cumsum(spacer + np.concatenate([[0], size[:-1]]))
    keep = np.ones(genes, bool)
    for gs, ge in gaps:
        keep &= (starts[last] + size[last] < gs - 1_000) | (starts[first] > ge + 1_000)
    rows = np.column_stack([starts, starts + size])[np.repeat(keep, exons)]
    return rows, exons[keep].tolist()


def exome_genome(rng: np.random.Generator, lengths: dict[str, int], targets: int) -> _Genome:
    """hg38-shaped contigs of `lengths` (GAPS_MB scaled to them) with ~`targets` targets in
    genes, spread over the contigs by their length outside N runs."""
    gaps = {}
    for chrom, n in lengths.items():
        scale, end = n / HG38[chrom], min(TELOMERE, n // 100)
        inner = [(int(s * 1e6 * scale), int(e * 1e6 * scale)) for s, e in GAPS_MB[chrom]]
        gaps[chrom] = [(0, end), *((max(s, end), e) for s, e in inner), (n - end, n)]
    usable = np.array([n - sum(e - s for s, e in gaps[c]) for c, n in lengths.items()])
    genes = rng.multinomial(round(targets / EXONS_PER_GENE), usable / usable.sum())
    seqs, rows, clusters = {}, {}, {}
    for (chrom, n), count in zip(lengths.items(), genes, strict=True):
        seqs[chrom] = sequence(rng, n, gaps[chrom])
        rows[chrom], clusters[chrom] = exome_targets(rng, n, int(count), gaps[chrom])
    return _Genome(seqs, gaps, rows, clusters)


def exome_cohort(scale: float, samples: int, reads: int, targets: int,
                 seed: int) -> tuple[Cohort, dict]:
    """The cached cohort, generated on first use; and its generation times (s) by part."""
    lengths = {c: round(n * scale) for c, n in HG38.items()}
    reads, targets = round(reads * scale), round(targets * scale)
    specs = standard_samples(lengths["chr3"], n_experimental=samples - 2)
    megabases = sum(lengths.values()) // 10**6
    folder = bb.DATA / f"exome-{megabases}Mb-{targets}t-{samples}x{reads}-seed{seed}"
    stamp = folder / "cohort.json"
    files = [folder / n for n in ("reference.fa", "targets.bed", "annotation.gff3")]
    if stamp.exists():
        bams = {s.name: folder / f"{s.name}.bam" for s in specs}
        return Cohort(*files, bams, specs), json.loads(stamp.read_text())
    _validate(specs, lengths)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"generating {sum(lengths.values()):,} bp, ~{targets:,} targets, {samples} samples x "
          f"{reads:,} reads into {folder} ...", flush=True)
    clock, made = time.perf_counter(), Cohort(*files, {}, specs)
    genome = exome_genome(np.random.default_rng([seed, 0]), lengths, targets)
    times = {"genome_s": time.perf_counter() - clock}
    _write_fasta(made.ref, genome.seqs)
    times["fasta_s"] = time.perf_counter() - clock - sum(times.values())
    _write_bed(made.bed, genome.targets)
    made.genes = _write_gff3(made.annotation, genome, np.random.default_rng([seed, 1]))
    times["bed_gff3_s"] = time.perf_counter() - clock - sum(times.values())
    for spec in specs:  # per sample as make_cohort draws it
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode())])
        fragments = _fragments(genome, spec, reads, READ_LENGTH, rng)
        made.bams[spec.name] = folder / f"{spec.name}.bam"
        _write_bam(made.bams[spec.name], genome, spec, fragments, READ_LENGTH,
                   min(4, os.cpu_count() or 1))
    times["bams_s"] = time.perf_counter() - clock - sum(times.values())
    times |= {"generation_s": sum(times.values()), "genome_bp": sum(lengths.values()),
              "targets": sum(len(r) for r in genome.targets.values()), "reads_per_sample": reads}
    stamp.write_text(json.dumps(times, indent=2) + "\n")
    print(f"generated in {times['generation_s']:.1f} s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in times.items() if k.endswith("_s")), flush=True)
    return made, times


def bed_rows(path: Path) -> set[tuple[str, str, str]]:
    with open(path) as handle:
        return {tuple(line.split("\t")[:3]) for line in handle if line.strip()}


def same_bins(job: Path, batch: Path) -> dict:
    """The job's target bins against those batch made of them (`targets.target.bed`; batch
    takes the job's antitargets as they are)."""
    ours, theirs = bed_rows(job / "targets.bed"), bed_rows(batch / "targets.target.bed")
    return {"cnvkit_nf": len(ours), "batch": len(theirs), "in_one_only": len(ours ^ theirs),
            "antitargets": len(bed_rows(job / "antitargets.bed"))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of the genome, targets and reads (0.02: a quick check)")
    parser.add_argument("--samples", type=int, default=5, help="2 controls + the rest tumours")
    parser.add_argument("--reads", type=int, default=6_000_000, help="reads per sample")
    parser.add_argument("--targets", type=int, default=200_000, help="targets, about")
    parser.add_argument("--seed", type=int, default=1, help="seed of the simulated cohort")
    parser.add_argument("--keep", action="store_true", help="keep the outputs (path printed)")
    parser.add_argument("--skip-warm", action="store_true", help="no warm pair")
    parser.add_argument("--skip-lab", action="store_true", help="no batch with its own bins")
    parser.add_argument("--max-wait", type=float, default=600,
                        help="before each side, wait up to this many seconds for quiet")
    args = parser.parse_args(argv)
    if args.samples < 3:
        parser.error("--samples must be at least 3 (2 controls + 1 tumour)")

    made, generation = exome_cohort(args.scale, args.samples, args.reads, args.targets, args.seed)
    options = bb.confs(bb.CPUS)
    nxf = bb.nextflow.ensure(log=print)
    startup = {"nextflow_version_s": bb.startup_seconds([nxf, "-version"]),
               "cnvkit_import_s": bb.startup_seconds([bb.CNVKIT, "version"])}
    work = Path(tempfile.mkdtemp(prefix="bench_exome-"))
    cold, state = work / "cnvkit-nf", work / "cnvkit-nf" / "state"
    job = Results(cold / "output").reference
    same_bins_options = [*bb.BATCH_OPTIONS, "--antitargets", job / "antitargets.bed"]
    sides = {
        "cnvkit_nf": ("cnvkit-nf run (cold)", partial(bb.run_pipeline, made, options, cold)),
        "baseline": ("access + batch on the job's bins + genemetrics + sex", partial(
            bb.run_baseline, made, work / "batch", same_bins_options, job / "targets.bed")),
    }
    if not args.skip_lab:
        sides["lab"] = ("access + batch as a lab runs it (autobin) + genemetrics + sex",
                        partial(bb.run_baseline, made, work / "lab", LAB_OPTIONS))
    if not args.skip_warm:
        sides["warm"] = ("warm: cnvkit-nf run, 1 tumour, reference kept", partial(
            bb.run_pipeline, made, options, work / "warm", tumours=made.experimental[:1],
            state=state))
        sides["warm_baseline"] = ("batch TUMOUR -r reference.cnn + genemetrics", partial(
            bb.run_warm_baseline, made, work / "batch" / "reference.cnn", work / "warm-batch"))
    run: dict = {}
    for side, (label, call) in sides.items():
        waited = bb.wait_until_quiet(args.max_wait)
        print(f"{label}", end=" ", flush=True)
        run[side] = call() | {"waited_s": waited}
        print(f"{run[side]['wall_s']:.1f} s (exit {run[side]['exit']})", flush=True)
        if side == "cnvkit_nf":
            runs = list(StateDir(state).runs.iterdir())
            # without the work dir, as a job keeps it (the bench keeps it: --keep-work)
            kept = [part for r in runs for part in r.iterdir() if part.name != "work"]
            run["disk"] = {"cnvkit_nf_run_folder": disk_bytes(kept),
                           "cnvkit_nf_output_dir": disk_bytes([cold / "output"]),
                           "cnvkit_nf": disk_bytes([*kept, cold / "output"]),
                           "cnvkit_nf_with_work_dir": disk_bytes([*runs, cold / "output"])}
    failed = any(r["exit"] for k, r in run.items() if k in sides)
    if not run["baseline"]["exit"]:
        run["disk"]["batch"] = disk_bytes([work / "batch"])
        run["target_bins"] = same_bins(job, work / "batch")
    specs = [s for s in made.samples if s.events]
    run["calls"] = bb.check_calls(specs, cold / "output", work / "batch")
    if "lab" in run:
        run["calls_lab"] = bb.check_calls(specs, cold / "output", work / "lab")

    summary = bb.summarise([run], startup)
    bb.report(summary, run)
    summary |= extra_ratios(run)
    print_extra(run, summary)
    return bb.finish(RESULTS, {
        "machine": bb.machine(),
        "cohort": {"folder": str(made.ref.parent), **generation,
                   "samples": {s.name: "control" if s.control else "tumour" for s in made.samples}},
        "request_options": options,
        "batch_options": {"baseline": bb.BATCH_OPTIONS, "lab": LAB_OPTIONS, "-p": bb.CPUS},
        "summary": summary,
        "run": run,
        "failed": failed,
    }, work, failed, args.keep)


def extra_ratios(run: dict) -> dict:
    """cnvkit-nf against batch as a lab runs it (wall s)."""
    if "lab" not in run:
        return {}
    steps = run["lab"]["steps"]
    lab_1 = steps["access"]["wall_s"] + steps["batch"]["wall_s"]
    nf = run["cnvkit_nf"]["wall_s"]
    return {"lab": {"baseline_1": lab_1, "baseline_2": run["lab"]["wall_s"],
                    "ratio_1": nf / lab_1, "ratio_2": nf / run["lab"]["wall_s"]}}


def print_extra(run: dict, summary: dict) -> None:
    """What bench_batch's report has no line for: batch as a lab runs it, bins, disk."""
    if "lab" in summary:
        lab = summary["lab"]
        print(f"\n{'lab: access + batch (autobin) s':<52}{lab['baseline_1']:>9.1f}")
        print(f"{'lab: + genemetrics + sex s':<52}{lab['baseline_2']:>9.1f}")
        print(f"{'cnvkit-nf / lab 1, / lab 2':<52}{lab['ratio_1']:>9.2f}{lab['ratio_2']:>9.2f}")
        for row in run["calls_lab"]:
            print(f"  lab {row['sample']:<10}{row['event']:<24}planted {row['planted']}  "
                  f"batch={row['batch']}")
    if "target_bins" in run:
        b = run["target_bins"]
        print(f"target bins: cnvkit-nf {b['cnvkit_nf']:,}, batch {b['batch']:,}, "
              f"in one only {b['in_one_only']:,}; antitarget bins (both) {b['antitargets']:,}")
    for name, size in run.get("disk", {}).items():
        print(f"{'disk, ' + name + ' (MB, hard links once)':<52}{size / 2**20:>9.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
