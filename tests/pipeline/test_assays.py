"""Issue 25: the assays (method hybrid | amplicon | wgs), bin sizes and access options.

End to end (real nextflow + CNVkit on simulated cohorts, one run per assay shared by its tests):
an amplicon and a wgs job give exactly what the hand-run CNVkit chain of `cnvkit.py batch -m`
gives, call the planted events, draw scatters and write report.html without antitargets; a
wgs job's exclusion BED removes its regions; a hybrid job with autobin takes both sizes from
CNVkit's autobin. Fast: cnvkit_stage.py's {NAME} words, bin_sizes.py's plan and fit warnings,
the reference record's method and bin sizes.

The runs are direct `nextflow run`s: the pipeline's own input check (CHECK_INPUTS) checks the
assay's BAMs (an amplicon panel's are not duplicate-marked) and makes the bin-size plan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scaffold.simulate import make_cohort, standard_samples
from tests.conftest import SMALL_CHROM, load_script

ROOT = Path(__file__).resolve().parents[2]
CNVKIT = str(Path(sys.executable).parent / "cnvkit.py")
EXCLUDED = ("chr4", 100_000, 160_000)  # the wgs job's exclusion BED
SEGMETRICS = ("--ci", "--pi", "--alpha", "0.5", "--smooth-bootstrap", "0")
# call_conf of the amplicon and wgs runs: copy numbers by rounding (a gain of log2 0.72 is 3
# copies, not threshold's 4)
CALL = ("-m", "clonal")


def run(nextflow: str, cohort, work: Path, **request) -> dict:
    """`nextflow run main.nf` on the cohort (its samples as rows) with the request's fields as
    params; returns {"result", "out", "params", "work"}."""
    work.mkdir(parents=True, exist_ok=True)
    out = work / "results"
    params = cohort.request(out, **request)
    (work / "params.json").write_text(json.dumps(params, indent=2))
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"  # CNVkit's Python
    result = subprocess.run(
        [nextflow, "run", str(ROOT / "main.nf"), "-params-file", str(work / "params.json"),
         "-profile", "local", "-ansi-log", "false"],
        cwd=work, capture_output=True, text=True, env={**os.environ, "PATH": path})
    return {"result": result, "out": out, "params": params, "work": work}


def rows(path: Path) -> list[dict]:
    lines = [line.split("\t") for line in path.read_text().splitlines() if line]
    return [dict(zip(lines[0], row, strict=True)) for row in lines[1:]]


def called_copies(call_cns: Path, chrom: str, start: int, end: int) -> set[int]:
    quarter = (end - start) // 4
    return {int(r["cn"]) for r in rows(call_cns) if r["chromosome"] == chrom
            and int(r["start"]) < end - quarter and int(r["end"]) > start + quarter}


def dominant_copies(call_cns: Path, chrom: str, start: int, end: int) -> int:
    """The copy number called over most of a region (a short noisy segment at a WGS event's
    edge may differ)."""
    overlap = {}
    for r in rows(call_cns):
        if r["chromosome"] == chrom:
            bp = min(end, int(r["end"])) - max(start, int(r["start"]))
            if bp > 0:
                overlap[int(r["cn"])] = overlap.get(int(r["cn"]), 0) + bp
    return max(overlap, key=overlap.get)


def hand_chain(commands: list[list], cwd: Path) -> list[str]:
    """Run `cnvkit.py` command lines one by one; the stdout of each."""
    outputs = []
    for words in commands:
        done = subprocess.run([CNVKIT, *map(str, words)], cwd=cwd, capture_output=True,
                              text=True)
        assert done.returncode == 0, (words, done.stderr[-2000:])
        outputs.append(done.stdout)
    return outputs


def autobin_size(table: str) -> int:
    """The target bin size of `cnvkit.py autobin`'s table."""
    line = next(line for line in table.splitlines() if line.startswith("Target:"))
    return int(line.split("\t")[2])


def assert_same(out: Path, mine: Path, names: list[str]) -> None:
    for name in names:
        assert (out / name).read_bytes() == (mine / Path(name).name).read_bytes(), name


def assert_events_called(out: Path, cohort) -> None:
    for spec in cohort.samples:
        if spec.control:
            continue
        calls = out / "samples" / spec.name / f"{spec.name}.call.cns"
        for event in spec.events:
            assert dominant_copies(calls, event.chrom, event.start, event.end) == \
                event.copies, (event, calls.read_text())
        assert called_copies(calls, "chr1", 0, SMALL_CHROM) == {2}


def assert_plots_and_report(out: Path, cohort, method: str) -> None:
    assert (out / "reference" / "antitargets.bed").read_text() == ""
    for spec in cohort.samples:
        if not spec.control:
            assert (out / "samples" / spec.name / f"{spec.name}-scatter.png").stat().st_size
    page = (out / "report.html").read_text()
    assert f"Method <b>{method}</b>" in page
    assert "reference/bin_sizes.json" in json.dumps(json.loads(
        (out / "manifest.json").read_text()))


def reference_chain(cohort, targets: str, mine: Path) -> list[list]:
    """coverage of every sample on targets and the empty antitargets, the pooled reference
    --no-edge, then fix --no-edge of each tumour: as batch -m amplicon|wgs."""
    chain = []
    for spec in cohort.samples:
        bam = cohort.bams[spec.name]
        chain += [["coverage", bam, targets, "-o", mine / f"{spec.name}.targetcoverage.cnn"],
                  ["coverage", bam, mine / "antitargets.bed", "-o",
                   mine / f"{spec.name}.antitargetcoverage.cnn"]]
    pooled = sorted(mine / f"{s.name}.{kind}coverage.cnn" for s in cohort.samples if s.control
                    for kind in ("target", "antitarget"))
    chain.append(["reference", *pooled, "--no-edge", "-f", cohort.ref, "-o",
                  mine / "reference.cnn"])
    return chain


def sample_chain(cohort, mine: Path, segment: list[str]) -> list[list]:
    chain = []
    for spec in cohort.samples:
        if spec.control:
            continue
        out = mine / spec.name
        chain += [
            ["fix", mine / f"{spec.name}.targetcoverage.cnn",
             mine / f"{spec.name}.antitargetcoverage.cnn", mine / "reference.cnn", "--no-edge",
             "-o", f"{out}.cnr"],
            ["segment", f"{out}.cnr", *segment, "-p", "1", "--rscript-path", "Rscript", "-o",
             f"{out}.cns"],
            ["segmetrics", f"{out}.cnr", "-s", f"{out}.cns", *SEGMETRICS, "-o",
             f"{out}.segmetrics.cns"],
            ["call", f"{out}.segmetrics.cns", *CALL, "-x", spec.sex, "-o", f"{out}.call.cns"],
        ]
    return chain


def sample_files(cohort) -> list[str]:
    return [f"samples/{s.name}/{s.name}{suffix}" for s in cohort.samples if not s.control
            for suffix in (".cnr", ".cns", ".segmetrics.cns", ".call.cns")]


# --- wgs: autobin by default, an exclusion BED, no BED --------------------------------------


@pytest.fixture(scope="module")
def wgs_cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("wgs_cohort"),
                       standard_samples(SMALL_CHROM, n_experimental=1),
                       reads_per_sample=100_000, seed=7, chrom_length=SMALL_CHROM, assay="wgs")


@pytest.fixture(scope="module")
def wgs_run(wgs_cohort, nextflow_bin, tmp_path_factory):
    work = tmp_path_factory.mktemp("wgs_run")
    exclude = work / "blacklist.bed"
    exclude.write_text("\t".join(map(str, EXCLUDED)) + "\n")
    done = run(nextflow_bin, wgs_cohort, work, access_exclude=[str(exclude)],
               call_conf=" ".join(CALL))
    assert done["result"].returncode == 0, done["result"].stdout[-4000:]
    return done | {"exclude": exclude}


@pytest.mark.e2e
def test_wgs_equals_cnvkit_chain_by_hand(wgs_run, wgs_cohort, tmp_path):
    mine = tmp_path
    (mine / "antitargets.bed").write_text("")
    first = hand_chain([
        ["access", wgs_cohort.ref, "-x", wgs_run["exclude"], "-o", mine / "access.bed"],
        # batch -m wgs: the median-size BAM of the controls, 50,000 bp per bin over access
        ["autobin", *sorted(wgs_cohort.controls), "-m", "wgs", "-g", mine / "access.bed",
         "-b", "50000", "-f", wgs_cohort.ref, "--target-output-bed", mine / "autobin.bed",
         "--antitarget-output-bed", mine / "autobin-anti.bed"],
    ], mine)
    size = autobin_size(first[1])
    hand_chain([["target", mine / "access.bed", "--split", "--avg-size", size, "-o",
                 mine / "targets.bed"]], mine)
    hand_chain(reference_chain(wgs_cohort, mine / "targets.bed", mine), mine)
    hand_chain(sample_chain(wgs_cohort, mine, ["-t", "1e-6"]), mine)
    out = wgs_run["out"]
    assert_same(out, mine, ["reference/access.bed", "reference/targets.bed",
                            "reference/reference.cnn"])
    for name in sample_files(wgs_cohort):
        assert (out / name).read_bytes() == (mine / Path(name).name).read_bytes(), name
    sizes = json.loads((out / "reference" / "bin_sizes.json").read_text())
    assert sizes["method"] == "wgs" and sizes["autobin"] is True
    assert sizes["target"]["avg_size"] == size and sizes["target"]["from"] == "autobin"
    assert sizes["target"]["bam"] in {p.name for p in wgs_cohort.controls}
    assert sizes["antitarget"] == {"from": "none"}
    assert sizes["bins"] == {"target": len((out / "reference/targets.bed").read_text()
                                           .splitlines()), "antitarget": 0}


@pytest.mark.e2e
def test_wgs_calls_plots_report_and_record(wgs_run, wgs_cohort):
    out = wgs_run["out"]
    assert_events_called(out, wgs_cohort)
    assert_plots_and_report(out, wgs_cohort, "wgs")
    record = json.loads((out / "reference" / "reference.json").read_text())
    assert record["method"] == "wgs" and record["autobin"] is True
    assert record["bin_sizes"]["target"]["from"] == "autobin"
    assert [e["name"] for e in record["access"]["exclude"]] == ["blacklist.bed"]
    assert record["bed"] is None


@pytest.mark.e2e
def test_exclusion_bed_removes_its_regions(wgs_run):
    chrom, start, end = EXCLUDED
    inside = [r for r in (line.split("\t") for line in
                          (wgs_run["out"] / "reference" / "targets.bed").read_text().splitlines())
              if r[0] == chrom and int(r[1]) < end and int(r[2]) > start]
    assert inside == []


# --- amplicon: no access, no antitargets, CNVkit's default target size ----------------------


@pytest.fixture(scope="module")
def amplicon_cohort(tmp_path_factory):
    return make_cohort(tmp_path_factory.mktemp("amplicon_cohort"),
                       standard_samples(SMALL_CHROM, n_experimental=1),
                       reads_per_sample=40_000, seed=7, chrom_length=SMALL_CHROM,
                       assay="amplicon")


@pytest.fixture(scope="module")
def amplicon_run(amplicon_cohort, nextflow_bin, tmp_path_factory):
    done = run(nextflow_bin, amplicon_cohort, tmp_path_factory.mktemp("amplicon_run"),
               call_conf=" ".join(CALL))
    assert done["result"].returncode == 0, done["result"].stdout[-4000:]
    return done


@pytest.mark.e2e
def test_amplicon_equals_cnvkit_chain_by_hand(amplicon_run, amplicon_cohort, tmp_path):
    mine = tmp_path
    (mine / "antitargets.bed").write_text("")
    hand_chain([["target", amplicon_cohort.bed, "-o", mine / "targets.bed"]], mine)
    hand_chain(reference_chain(amplicon_cohort, mine / "targets.bed", mine), mine)
    hand_chain(sample_chain(amplicon_cohort, mine, []), mine)
    out = amplicon_run["out"]
    assert not (out / "reference" / "access.bed").exists()  # amplicon uses no access
    assert_same(out, mine, ["reference/targets.bed", "reference/reference.cnn"])
    for name in sample_files(amplicon_cohort):
        assert (out / name).read_bytes() == (mine / Path(name).name).read_bytes(), name
    sizes = json.loads((out / "reference" / "bin_sizes.json").read_text())
    assert sizes["autobin"] is False
    assert sizes["target"] == {"avg_size": None, "from": "cnvkit default"}
    assert sizes["antitarget"] == {"from": "none"}


@pytest.mark.e2e
def test_amplicon_calls_plots_and_report(amplicon_run, amplicon_cohort):
    out = amplicon_run["out"]
    assert_events_called(out, amplicon_cohort)
    assert_plots_and_report(out, amplicon_cohort, "amplicon")
    assert json.loads((out / "reference" / "reference.json").read_text())["access"] is None


# --- hybrid with autobin: both sizes from autobin, as batch computes them -------------------


@pytest.mark.e2e
def test_hybrid_autobin_sizes(small_cohort, nextflow_bin, tmp_path):
    done = run(nextflow_bin, small_cohort, tmp_path / "run", autobin=True)
    assert done["result"].returncode == 0, done["result"].stdout[-4000:]
    out = done["out"]
    table = hand_chain([["autobin", *sorted(small_cohort.controls), "-m", "hybrid", "-t",
                         small_cohort.bed, "-g", out / "reference" / "access.bed", "-f",
                         small_cohort.ref, "--target-output-bed", tmp_path / "t.bed",
                         "--antitarget-output-bed", tmp_path / "a.bed"]], tmp_path)[0]
    expected = {line.split("\t")[0].strip().rstrip(":"): int(line.split("\t")[2])
                for line in table.splitlines()[1:]}
    sizes = json.loads((out / "reference" / "bin_sizes.json").read_text())
    assert sizes["target"]["from"] == sizes["antitarget"]["from"] == "autobin"
    assert sizes["target"]["avg_size"] == expected["Target"]
    assert sizes["antitarget"]["avg_size"] == expected["Antitarget"]
    hand_chain([["target", small_cohort.bed, "--split", "--avg-size", expected["Target"], "-o",
                 tmp_path / "targets.bed"],
                ["antitarget", tmp_path / "targets.bed", "-a", expected["Antitarget"], "-g",
                 out / "reference" / "access.bed", "-o", tmp_path / "antitargets.bed"]],
               tmp_path)
    assert_same(out, tmp_path, ["reference/targets.bed", "reference/antitargets.bed"])
    assert "Method <b>hybrid</b>, autobin on" in (out / "report.html").read_text()


# --- fast: words, plans, warnings, records --------------------------------------------------


@pytest.fixture(scope="module")
def bin_sizes():
    return load_script("bin_sizes")


def test_stage_words_from_file(tmp_path):
    stage = load_script("cnvkit_stage")
    words = tmp_path / "words.json"
    words.write_text(json.dumps({"size": ["--avg-size", "267"], "none": [], "null": None,
                                 "one": 5}))
    line = ["cnvkit.py", "target", "x.bed", "{size}", "{none}", "{null}", "{one}", "{sex}"]
    assert stage.file_words(line, str(words)) == [
        "cnvkit.py", "target", "x.bed", "--avg-size", "267", "5", "{sex}"]
    assert stage.file_words(["cnvkit.py", "target", "x.bed"], None) == [
        "cnvkit.py", "target", "x.bed"]
    with pytest.raises(ValueError, match="no 'other'"):
        stage.file_words(["{other}"], str(words))
    with pytest.raises(ValueError, match="--words-from"):
        stage.file_words(["{size}"], None)


@pytest.mark.parametrize(("argv", "target", "antitarget", "words"), [
    (["--method", "wgs", "--split", "--target-from", "wgs default", "--target-size", "5000",
      "--antitarget-from", "none"],
     {"avg_size": 5000, "from": "wgs default"}, {"from": "none"},
     {"target_size": ["--split", "--avg-size", "5000"], "antitarget_size": []}),
    (["--method", "wgs", "--split", "--target-from", "target_conf", "--target-size", "2000",
      "--antitarget-from", "none"],
     {"avg_size": 2000, "from": "target_conf"}, {"from": "none"},
     {"target_size": ["--split"], "antitarget_size": []}),
    (["--method", "hybrid", "--target-from", "cnvkit default", "--antitarget-from",
      "antitarget_conf", "--antitarget-size", "90000"],
     {"avg_size": None, "from": "cnvkit default"}, {"avg_size": 90000, "from": "antitarget_conf"},
     {"target_size": [], "antitarget_size": []}),
])
def test_bin_size_plan(bin_sizes, tmp_path, argv, target, antitarget, words):
    out, wordfile = tmp_path / "bin_sizes.json", tmp_path / "words.json"
    assert bin_sizes.main([*argv, "-o", str(out), "--words", str(wordfile)]) == 0
    record = json.loads(out.read_text())
    assert (record["target"], record["antitarget"]) == (target, antitarget)
    assert json.loads(wordfile.read_text()) == words


def test_huge_antitarget_size_warns(bin_sizes, tmp_path):
    """Dense targets (1 kb apart) and a 200 kb antitarget size: no antitarget bin fits."""
    targets = tmp_path / "targets.bed"
    targets.write_text("".join(f"chr1\t{s}\t{s + 200}\n" for s in range(1000, 99000, 1000)))
    access = tmp_path / "access.bed"
    access.write_text("chr1\t0\t100000\n")
    antitargets = tmp_path / "antitargets.bed"
    antitargets.write_text("")
    record = tmp_path / "bin_sizes.json"
    assert bin_sizes.main(["--method", "hybrid", "--target-from", "cnvkit default",
                           "--antitarget-from", "antitarget_conf", "--antitarget-size",
                           "200000", "-o", str(record), "--words", str(tmp_path / "w")]) == 0
    assert bin_sizes.main(["--check", str(record), "--targets", str(targets), "--antitargets",
                           str(antitargets), "--access", str(access)]) == 0
    checked = json.loads(record.read_text())
    assert checked["bins"] == {"target": 98, "antitarget": 0}
    assert len(checked["warnings"]) == 1
    assert checked["warnings"][0].startswith("no antitarget bins were made: the antitarget bin "
                                             "size 200000 bp (given in antitarget_conf)")


def test_autobin_clamp_warns(bin_sizes):
    limits = bin_sizes.autobin_limits()["target"]
    assert bin_sizes.clamp_warning("target", 0.5, 50000, 200000, limits) == [
        "autobin's target bin size for a depth of 0.50 would be 200000 bp: clamped to its "
        "maximum, 50000 bp"]
    assert bin_sizes.clamp_warning("target", 5.0, 20000, 20000, limits) == []


def test_record_method_and_bin_sizes(tmp_path):
    record_module = load_script("reference_record")
    fasta = tmp_path / "x.fa"
    fasta.write_text(">chr1\nACGT\n")
    record = {"method": "wgs", "options": {"target_conf": "", "antitarget_conf": ""},
              "bin_sizes": {"target": {"avg_size": 6884, "from": "autobin"},
                            "antitarget": {"from": "none"}},
              "fasta": {"contigs": {}, "sha256": record_module.sha256(fasta), "name": "x.fa"}}
    found = record_module.contradictions(record, {"target_conf": ""}, fasta, {}, "hybrid")
    assert found == ["it was built for method wgs, this job's method is hybrid: give method "
                     "wgs or build a reference for hybrid"]
    assert record_module.contradictions(record, {"target_conf": ""}, fasta, {}, "wgs") == []
    # a bin size the job gives is an option string like any other: compared as written
    assert record_module.contradictions(record, {"target_conf": "--avg-size 6884"},
                                        fasta, {}, "wgs") == [
        "target_conf '--avg-size 6884' contradicts the '' it was built with; give target_conf "
        "'' or leave it empty"]
    assert record_module.method_contradiction({}, "hybrid") == []  # records before issue 25


def test_report_shows_the_assay_bin_sizes_and_warnings():
    report = load_script("cnvkit_report")
    sizes = {"method": "hybrid", "autobin": True,
             "target": {"avg_size": 267, "from": "autobin", "depth": 374.5, "bam": "N1.bam"},
             "antitarget": {"avg_size": 90000, "from": "antitarget_conf"},
             "bins": {"target": 3300, "antitarget": 2},
             "warnings": ["few antitarget bins (2): most gaps between targets <x>"]}
    page = "\n".join(report.assay_section(sizes, {}))
    assert "Method <b>hybrid</b>, autobin on." in page
    assert "<td>267 bp</td><td>CNVkit&#x27;s autobin</td><td>3300</td>" \
           "<td>depth 374.50 of N1.bam</td>" in page.replace("\n", "")
    assert "given in antitarget_conf" in page
    assert '<p class="flag">Warning: few antitarget bins (2): most gaps between targets ' \
           "&lt;x&gt;.</p>" in page
    reused = "\n".join(report.assay_section(None, {"method": "wgs"}))
    assert "Method <b>wgs</b>: the regions are the reused reference's bins." in reused
