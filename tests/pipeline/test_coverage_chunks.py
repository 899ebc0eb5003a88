"""Coverage in chunks of whole chromosomes (bin/coverage_chunks.py, subworkflows/local/coverage):
the plan, the split and the merge; merged files identical (bytes) to `cnvkit.py coverage` of all
the bins, by hand and through the real `nextflow run`, with a reference built in the job or
reused."""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_script
from tests.pipeline.test_sample_facts import nextflow_run, processes_run, read_table

ROOT = Path(__file__).resolve().parents[2]
STAGE = [sys.executable, str(ROOT / "bin" / "cnvkit_stage.py")]


@pytest.fixture(scope="module")
def chunks():
    return load_script("coverage_chunks")


def run_stage(lines: list[str], cwd: Path) -> None:
    """CNVkit command lines in one interpreter, as the pipeline's stages run them."""
    done = subprocess.run(STAGE, input="\n".join(lines), text=True, cwd=cwd,
                          capture_output=True)
    assert done.returncode == 0, done.stderr


def write_bed(path: Path, chromosomes: list[tuple[str, int]]) -> Path:
    path.write_text("".join(f"{chrom}\t{i * 100}\t{i * 100 + 50}\tg\n"
                            for chrom, bins in chromosomes for i in range(bins)))
    return path


# --- the plan ---------------------------------------------------------------------------------


def best_largest(weights: list[int], groups: int) -> int:
    """The smallest largest group of any split of `weights` into `groups` consecutive ones."""
    return min(
        max(sum(weights[a:b]) for a, b in itertools.pairwise((0, *cuts, len(weights))))
        for cuts in itertools.combinations(range(1, len(weights)), groups - 1))


@pytest.mark.parametrize("weights", [[5, 1, 1, 1, 1, 1, 5], [9, 8, 7, 6, 5, 4, 3, 2, 1],
                                     [1, 2, 3, 4, 5, 6, 7, 8, 9], [3, 3, 3, 3, 3, 3, 3]])
@pytest.mark.parametrize("max_bins", [7, 10, 15])
def test_plan_is_whole_chromosomes_in_order_balanced(chunks, weights, max_bins):
    chromosomes = [(f"chr{i}", w) for i, w in enumerate(weights, 1)]
    groups = chunks.plan(chromosomes, max_bins)
    assert list(itertools.chain(*groups)) == [chrom for chrom, _ in chromosomes]  # in order
    total = sum(weights)
    assert len(groups) <= math.ceil(total / max_bins)
    bins = dict(chromosomes)
    largest = max(sum(bins[c] for c in group) for group in groups)
    assert largest == best_largest(weights, min(len(weights), math.ceil(total / max_bins)))


def test_plan_below_the_size_is_one_chunk_and_a_big_chromosome_stays_whole(chunks):
    chromosomes = [("chr1", 50), ("chr2", 30), ("chr3", 20)]
    assert chunks.plan(chromosomes, 100) == [["chr1", "chr2", "chr3"]]
    # chr1 alone takes longest: chr2 and chr3 as one task end no later
    assert chunks.plan(chromosomes, 10) == [["chr1"], ["chr2", "chr3"]]


def test_split_puts_each_chromosome_in_one_chunk_in_the_beds_order(chunks, tmp_path):
    targets = write_bed(tmp_path / "t.bed", [("chr1", 40), ("chr2", 30), ("chr10", 20),
                                             ("chrX", 10)])
    # antitargets on fewer chromosomes, one of which has no targets: one order for both
    antitargets = write_bed(tmp_path / "a.bed", [("chr1", 40), ("chr3", 25), ("chrX", 5)])
    assert chunks.main(["split", "--targets", str(targets), "--antitargets", str(antitargets),
                        "--max-bins", "60", "-o", str(tmp_path / "out")]) == 0
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    count = len(names) // 2
    assert count == math.ceil(170 / 60)
    assert names == sorted(f"{i:03d}.{kind}.bed" for i in range(1, count + 1)
                           for kind in ("target", "antitarget"))
    for kind, whole in (("target", targets), ("antitarget", antitargets)):
        parts = [(tmp_path / "out" / f"{i:03d}.{kind}.bed").read_text()
                 for i in range(1, count + 1)]
        assert "".join(parts) == whole.read_text()
    seen = [{line.split("\t")[0] for kind in ("target", "antitarget")
             for line in (tmp_path / "out" / f"{i:03d}.{kind}.bed").read_text().splitlines()}
            for i in range(1, count + 1)]
    assert all(not (a & b) for a, b in itertools.combinations(seen, 2))  # whole chromosomes
    assert seen[0] == {"chr1"}  # 80 bins alone: more than 60


@pytest.mark.parametrize("antitargets", [
    [("chr2", 5), ("chr1", 5)],  # the chromosomes in another order than the targets'
    [("chr1", 5), ("chr2", 5), ("chr1", 5)],  # a chromosome's lines apart
])
def test_beds_not_in_one_chromosome_order_are_one_chunk(chunks, tmp_path, antitargets):
    targets = write_bed(tmp_path / "t.bed", [("chr1", 40), ("chr2", 30)])
    anti = write_bed(tmp_path / "a.bed", antitargets)
    chunks.split(targets, anti, 10, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == \
        ["001.antitarget.bed", "001.target.bed"]
    assert (tmp_path / "out" / "001.antitarget.bed").read_text() == anti.read_text()


def test_merge_skips_chunks_without_bins_and_keeps_an_empty_file_empty(chunks, tmp_path):
    empty = tmp_path / "empty.cnn"
    empty.write_text("chromosome\tstart\tend\tgene\tlog2\n")  # CNVkit's file of no bins
    rows = [tmp_path / f"{i}.cnn" for i in range(2)]
    for i, path in enumerate(rows):
        path.write_text(f"chromosome\tstart\tend\tgene\tlog2\tdepth\nchr{i}\t0\t10\t-\t0\t1\n")
    chunks.merge([rows[0], empty, rows[1]], tmp_path / "merged.cnn")
    assert (tmp_path / "merged.cnn").read_text() == \
        "chromosome\tstart\tend\tgene\tlog2\tdepth\nchr0\t0\t10\t-\t0\t1\nchr1\t0\t10\t-\t0\t1\n"
    chunks.merge([empty, empty], tmp_path / "none.cnn")
    assert (tmp_path / "none.cnn").read_bytes() == empty.read_bytes()


# --- by hand: CNVkit's coverage of the chunks, merged, is its coverage of the whole -----------


def test_merged_chunk_coverages_equal_one_coverage(chunks, small_cohort, tmp_path):
    run_stage([f"cnvkit.py target {small_cohort.bed} -o t.bed",
               "cnvkit.py antitarget t.bed -a 5000 -o a.bed"], tmp_path)
    bins = sum(1 for kind in "ta" for _ in open(tmp_path / f"{kind}.bed"))
    count = chunks.split(tmp_path / "t.bed", tmp_path / "a.bed", bins // 4, tmp_path / "chunks")
    assert count >= 3
    bam = small_cohort.bams["Sample_1"]
    lines = [f"cnvkit.py coverage {bam} {kind}.bed -o whole.{kind}.cnn" for kind in "ta"]
    lines += [f"cnvkit.py coverage {bam} chunks/{i:03d}.{kind}.bed -o {i}.{kind}.cnn"
              for i in range(1, count + 1) for kind in ("target", "antitarget")]
    run_stage(lines, tmp_path)
    for kind, short in (("target", "t"), ("antitarget", "a")):
        chunks.merge([tmp_path / f"{i}.{kind}.cnn" for i in range(1, count + 1)],
                     tmp_path / f"merged.{kind}.cnn")
        merged = (tmp_path / f"merged.{kind}.cnn").read_bytes()
        assert merged == (tmp_path / f"whole.{short}.cnn").read_bytes(), kind
        assert merged.count(b"\n") > 100


# --- through the real `nextflow run` ----------------------------------------------------------


def run_job(nextflow_bin, work: Path, **params) -> Path:
    work.mkdir()
    (work / "params.json").write_text(json.dumps({"output_dir": str(work / "out"), **params}))
    result = nextflow_run(nextflow_bin, work, "-params-file", str(work / "params.json"))
    assert result.returncode == 0, result.stdout + result.stderr
    return work / "out"


def coverage_by_hand(bams: dict[str, Path], targets: Path, antitargets: Path,
                     folder: Path) -> None:
    folder.mkdir()
    run_stage([f"cnvkit.py coverage {bam} {bed} -o {name}.{kind}coverage.cnn"
               for name, bam in bams.items()
               for kind, bed in (("target", targets), ("antitarget", antitargets))], folder)


def assert_chunked(out: Path, samples: int) -> int:
    """The chunk tasks ran, one per (sample, chunk), merged per sample, and the task count
    said so; returns how many chunks."""
    ran = processes_run(out)
    assert "CNVKIT_COVERAGE" not in ran
    assert ran.count("CNVKIT_COVERAGE_SPLIT") == 1
    assert ran.count("CNVKIT_COVERAGE_MERGE") == samples
    count, rest = divmod(ran.count("CNVKIT_COVERAGE_CHUNK"), samples)
    assert count >= 3 and rest == 0
    trace = read_table(out / "pipeline_info" / "trace.tsv")
    assert int((out / "pipeline_info" / "tasks.txt").read_text()) == len(trace)
    tags = {row["tag"] for row in trace if row["process"].endswith("CNVKIT_COVERAGE_CHUNK")}
    assert f"Sample_1 chunk {count:03d}" in tags
    return count


@pytest.fixture(scope="module")
def chunked_job(nextflow_bin, small_cohort, tmp_path_factory):
    """The small cohort with antitarget bins, coverage in chunks of ~1/4 of them."""
    work = tmp_path_factory.mktemp("chunked")
    out = run_job(nextflow_bin, work / "built", samples=small_cohort.request_samples(),
                  ref=str(small_cohort.ref), bed=str(small_cohort.bed),
                  antitarget_conf="-a 5000", coverage_chunk_bins=200, plots=False)
    return {"work": work, "out": out}


@pytest.mark.e2e
def test_chunked_job_publishes_the_coverage_one_task_writes(chunked_job, small_cohort):
    out, work = chunked_job["out"], chunked_job["work"]
    bins = sum(1 for kind in ("targets", "antitargets") for _ in open(out / "reference" /
                                                                     f"{kind}.bed"))
    assert bins > 4 * 200 > (out / "reference" / "targets.bed").read_text().count("\n")
    assert_chunked(out, len(small_cohort.bams))
    coverage_by_hand(small_cohort.bams, out / "reference" / "targets.bed",
                     out / "reference" / "antitargets.bed", work / "hand")
    published = sorted(p.name for p in (out / "coverage").iterdir())
    assert published == sorted(p.name for p in (work / "hand").glob("*.cnn"))  # merged only
    for name in published:
        assert (out / "coverage" / name).read_bytes() == (work / "hand" / name).read_bytes()
    listed = {e["path"] for e in json.loads((out / "manifest.json").read_text())["files"]}
    assert {f"coverage/{name}" for name in published} <= listed
    assert not [path for path in listed if ".0" in path.split("/")[-1]]  # no chunk's file


@pytest.mark.e2e
def test_chunked_job_reusing_a_reference_takes_its_bins(chunked_job, nextflow_bin,
                                                        small_cohort):
    work = chunked_job["work"]
    reference = chunked_job["out"] / "reference" / "reference.cnn"
    tumours = [row for row in small_cohort.request_samples() if row["role"] == "experimental"]
    out = run_job(nextflow_bin, work / "reused", samples=tumours, ref=str(small_cohort.ref),
                  bed=str(small_cohort.bed), reference_cnn=str(reference),
                  coverage_chunk_bins=200, plots=False)
    assert_chunked(out, len(tumours))
    (work / "regions").mkdir()
    run_stage([f"reference2targets.py {reference} -o regions"], work / "regions")
    bams = {row["id"]: Path(row["bam"]) for row in tumours}
    coverage_by_hand(bams, work / "regions" / "regions.target.bed",
                     work / "regions" / "regions.antitarget.bed", work / "hand-reused")
    for name in bams:
        for kind in ("target", "antitarget"):
            file = f"{name}.{kind}coverage.cnn"
            assert (out / "coverage" / file).read_bytes() == \
                (work / "hand-reused" / file).read_bytes()
