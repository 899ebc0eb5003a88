"""Tests of the synthetic cohort generator (real samtools and pysam)."""

import subprocess
import sys
from pathlib import Path

import pysam
import pytest

from scaffold.simulate import (
    TARGET_FLANK,
    Cohort,
    Event,
    SampleSpec,
    default_events,
    make_cohort,
    seed_like_cohort,
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
