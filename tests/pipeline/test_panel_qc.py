"""The controls' panel (issue 27): each control's noise against a reference pooled from the
others, reference/controls-metrics.tsv, from one launcher run through the real Nextflow and
CNVkit, and where the stage does not run (stub runs)."""

from __future__ import annotations

import csv
import json
import shlex
import shutil
import subprocess

import pytest

from cnvkit_nf.storage import manifest
from scaffold.demo import SEED
from scaffold.simulate import Cohort, SampleSpec, default_events, make_cohort
from tests.conftest import ROOT
from tests.pipeline.test_pipeline_e2e import CNVKIT, launch, nextflow_run, read_table
from tests.pipeline.test_scheduling import when

pytestmark = pytest.mark.e2e

CHROM = 400_000
CONTROLS = ("Control_1", "Control_2", "Control_3")
NOISY = "Control_3"
METRICS = "reference/controls-metrics.tsv"


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Cohort:
    """Three female controls, one with an uneven capture (noise 0.5), and a tumour."""
    samples = [SampleSpec(name, "female", control=True, noise=0.5 if name == NOISY else 0.0)
               for name in CONTROLS]
    samples.append(SampleSpec("Tumour", "female", default_events(CHROM)))
    return make_cohort(tmp_path_factory.mktemp("panel"), samples, reads_per_sample=150_000,
                       seed=5, chrom_length=CHROM)


@pytest.fixture(scope="module")
def run(cohort, nextflow_bin, tmp_path_factory) -> dict:
    """The seed's options on the tumour and the three controls, each sample's sex given."""
    work = tmp_path_factory.mktemp("panel_run")
    options = {k: v for k, v in json.loads(SEED.read_text()).items() if k.endswith("_conf")}
    request = cohort.request(work / "out", **options)
    (work / "request.json").write_text(json.dumps(request))
    done = launch(["run", str(work / "request.json")], work / "state", cwd=work)
    assert done.returncode == 0, done.stdout + done.stderr
    return {"out": work / "out", "request": request}


def test_noisy_control_has_the_largest_spread(run):
    out = run["out"]
    listed = {entry["path"] for entry in json.loads((out / "manifest.json").read_text())["files"]}
    assert METRICS in listed and manifest.verify(out) == []
    with open(out / METRICS, newline="") as handle:
        rows = {row["sample"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert sorted(rows) == [f"panel/{name}.cnr" for name in CONTROLS]
    for measure in ("stdev", "mad"):
        spread = {name: float(rows[f"panel/{name}.cnr"][measure]) for name in CONTROLS}
        quiet = max(value for name, value in spread.items() if name != NOISY)
        assert spread[NOISY] > 2.5 * quiet, (measure, spread)  # measured: 3.6-3.7x
    assert not (out / "panel").exists()  # the stage's intermediate files are not results


def test_report_names_the_noisy_control(run):
    page = (run["out"] / "report.html").read_text()
    assert (f"Control {NOISY} is noisy: consider dropping it from the controls and running the "
            "job again") in page
    assert page.count("is noisy: consider dropping it") == 1
    assert "controls, each against a reference of the others" in page  # limits from the panel


def test_metrics_equal_cnvkit_run_by_hand(run, tmp_path):
    """Each control's reference from the other two (no FASTA; reference_conf and -x female,
    the sex every control was given), fix, segment -m none, then metrics, on the published
    coverages: the same table, byte for byte."""
    request, out = run["request"], run["out"]

    def cnvkit(*args: str) -> None:
        subprocess.run([CNVKIT, *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "panel").mkdir()
    for name in CONTROLS:
        for kind in ("target", "antitarget"):
            shutil.copy(out / "coverage" / f"{name}.{kind}coverage.cnn", tmp_path)
    for name in CONTROLS:
        others = sorted(f"{other}.{kind}coverage.cnn" for other in CONTROLS if other != name
                        for kind in ("target", "antitarget"))
        cnvkit("reference", *others, *shlex.split(request["reference_conf"]), "-x", "female",
               "-o", f"panel/{name}.reference.cnn")
        cnvkit("fix", f"{name}.targetcoverage.cnn", f"{name}.antitargetcoverage.cnn",
               f"panel/{name}.reference.cnn", *shlex.split(request["fix_conf"]),
               "-o", f"panel/{name}.cnr")
        cnvkit("segment", f"panel/{name}.cnr", "-m", "none", "-o", f"panel/{name}.cns")
    cnvkit("metrics", *[f"panel/{name}.cnr" for name in CONTROLS],
           "-s", *[f"panel/{name}.cns" for name in CONTROLS], "-o", "metrics.tsv")
    assert (out / METRICS).read_bytes() == (tmp_path / "metrics.tsv").read_bytes()


@pytest.mark.parametrize("case", ["two controls", "one control", "given reference"])
def test_panel_runs_only_on_a_pooled_reference_of_two_or_more(nextflow_bin, tmp_path, case):
    """Stub runs of the test_stub profile (two controls): the panel runs, and is a result, only when
    the job pools its reference from two or more controls, and never before that reference;
    the task count agrees."""
    stub = ROOT / "tests" / "data" / "stub"
    params = {"output_dir": str(tmp_path / "out")}
    if case == "one control":
        params["control_inputs"] = [str(stub / "normal_B.sort.mkdup.bam")]
    elif case == "given reference":
        (tmp_path / "given.cnn").write_text("")
        params |= {"control_inputs": [], "reference_cnn": str(tmp_path / "given.cnn")}
    (tmp_path / "params.json").write_text(json.dumps(params))
    result = nextflow_run(nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
                          "-params-file", str(tmp_path / "params.json"))
    assert result.returncode == 0, result.stdout
    out = tmp_path / "out"
    trace = read_table(out / "pipeline_info" / "trace.tsv")
    by = {row["process"].split(":")[-1]: row for row in trace}
    ran = "CNVKIT_PANEL" in by
    listed = {entry["path"] for entry in json.loads((out / "manifest.json").read_text())["files"]}
    assert ran == (out / METRICS).exists() == (METRICS in listed) == (case == "two controls")
    assert int((out / "pipeline_info" / "tasks.txt").read_text()) == len(trace)
    if ran:
        assert when(by["CNVKIT_PANEL"], "start") >= when(by["CNVKIT_REFERENCE"], "complete")
