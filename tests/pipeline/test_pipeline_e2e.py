"""End to end: the real `nextflow` runs the pipeline on a generated cohort through the launcher."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pysam
import pytest

from cnvkit_nf.contract.params import to_params
from cnvkit_nf.contract.request import validate_request
from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.storage import manifest
from tests.conftest import CHROM, LAUNCHER, launch, seed_request

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CNVKIT = str(Path(sys.executable).parent / "cnvkit.py")
RESULTS_PER_TUMOUR = (".cnr", ".cns", ".segmetrics.cns", ".call.cns", ".genemetrics.tsv",
                      ".bintest.cns", ".vcf", ".bed")
PLOTS_PER_TUMOUR = ("-scatter.png", "-diagram.pdf", "-diagram.svg")
# The pipeline's fixed segmetrics settings (modules/cnvkit/sample): batch's interval, seeded.
SEGMETRICS = ("--ci", "--pi", "--alpha", "0.5", "--smooth-bootstrap", "0")
# Of a job with tumours and a reference pooled from two or more controls (every job here).
RESULTS_PER_JOB = ("sex/sex.tsv", "cohort/cohort.seg", "cohort/metrics.tsv",
                   "cohort/cnvkit_mqc.tsv", "reference/controls-metrics.tsv")


def read_table(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


def without_date(vcf: Path) -> list[str]:
    """A VCF's lines but its ##fileDate (the day it was written)."""
    return [line for line in vcf.read_text().splitlines() if not line.startswith("##fileDate")]


def called_copies(call_cns: Path, chrom: str, start: int, end: int) -> set[int]:
    """Copy numbers of the called segments overlapping the middle half of a region."""
    quarter = (end - start) // 4
    return {
        int(row["cn"]) for row in read_table(call_cns)
        if row["chromosome"] == chrom and int(row["start"]) < end - quarter
        and int(row["end"]) > start + quarter
    }


def test_run_prints_id_first_and_finishes(seed_run):
    result = seed_run["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("instance_id: ")
    assert "status: FINISHED" in result.stdout
    assert "warning: sex_conf: -y/--male-reference" in result.stderr  # decided: a warning
    # not a terminal: plain progress lines, tasks done never going back, ending complete
    steps = [line.split()[1].split("/") for line in result.stderr.splitlines()
             if line.startswith("progress: ")]
    done = [int(k) for k, _ in steps]
    assert len(steps) >= 2 and done == sorted(done) and steps[-1][0] == steps[-1][1]


def test_planted_changes_are_called(seed_run, cohort):
    calls = seed_run["out"] / "samples" / "Son_S2_ALL" / "Son_S2_ALL.call.cns"
    son = next(spec for spec in cohort.samples if spec.name == "Son_S2_ALL")
    assert son.events, "the cohort must plant events"
    for event in son.events:
        assert called_copies(calls, event.chrom, event.start, event.end) == {event.copies}, event
    untouched = called_copies(calls, "chr1", 0, CHROM)
    assert untouched == {2}


def test_output_layout_and_manifest(seed_run):
    out = seed_run["out"]
    expected = [
        "reference/access.bed", "reference/targets.bed", "reference/antitargets.bed",
        "reference/reference.cnn", "sex/sex.tsv", "pipeline_info/trace.tsv",
        "pipeline_info/report.html", "pipeline_info/timeline.html",
        "pipeline_info/versions.yml", "manifest.json",
        *RESULTS_PER_JOB, "report.html",
    ] + [f"samples/Son_S2_ALL/Son_S2_ALL{suffix}"
         for suffix in (*RESULTS_PER_TUMOUR, *PLOTS_PER_TUMOUR)
    ] + [f"coverage/{name}.{kind}coverage.cnn" for name in
         ("Son_S2_ALL", "Father_S5_ALL", "Mather_S1_ALL") for kind in ("target", "antitarget")]
    missing = [name for name in expected if not (out / name).is_file()]
    assert not missing
    assert not (out / "cohort" / "heatmap.png").exists()  # one tumour: no heatmap
    assert manifest.verify(out) == []
    listed = {entry["path"] for entry in json.loads((out / "manifest.json").read_text())["files"]}
    assert {name for name in expected if not name.startswith("pipeline_info/")} - \
        {"manifest.json"} <= listed
    assert not [name for name in listed if name.startswith("pipeline_info/")]  # Nextflow's logs
    assert "cnvkit: 0.9.14" in (out / "pipeline_info" / "versions.yml").read_text()
    sex = out / "sex" / "sex.tsv"
    original = sex.read_bytes()
    sex.write_text("tampered\n")
    try:
        assert manifest.verify(out) == ["sex/sex.tsv: size or checksum differs from the manifest"]
    finally:
        sex.write_bytes(original)


def _job_id(seed_run) -> str:
    return seed_run["result"].stdout.splitlines()[0].split(": ", 1)[1]


def test_sex_table_infers_each_sample(seed_run):
    sexes = {row["sample"].split(".")[0]: row["sex"]
             for row in read_table(seed_run["out"] / "sex" / "sex.tsv")
             if row["sample"].endswith("targetcoverage.cnn")}
    assert sexes == {"Son_S2_ALL": "Male", "Father_S5_ALL": "Male", "Mather_S1_ALL": "Female"}


def test_coverage_cpus_capped_by_what_cnvkit_can_use(seed_run):
    """The seed asks -p 5, but CNVkit's -p runs one process per 5,000 intervals: each sample
    gets one CPU, and a task of a role's samples (a single machine groups them) one each, at
    most the machine's."""
    trace = read_table(seed_run["out"] / "pipeline_info" / "trace.tsv")
    machine = min(16, os.cpu_count() or 1)
    tasks = {row["tag"]: int(row["cpus"]) for row in trace
             if row["process"].endswith("CNVKIT_COVERAGE")}
    assert sorted(" ".join(tasks).split()) == ["Father_S5_ALL", "Mather_S1_ALL", "Son_S2_ALL"]
    assert tasks == {tag: min(machine, len(tag.split())) for tag in tasks}


def test_progress_and_status(seed_run):
    trace = read_table(seed_run["out"] / "pipeline_info" / "trace.tsv")
    run_dir = seed_run["state"] / "runs" / _job_id(seed_run)
    assert (run_dir / "params.json").is_file()
    assert int((seed_run["out"] / "pipeline_info" / "tasks.txt").read_text()) == len(trace)
    status = launch(["status", _job_id(seed_run), "--json"], seed_run["state"])
    body = json.loads(status.stdout)
    assert body["status"] == "FINISHED"
    assert body["progress"] == f"{len(trace)}/{len(trace)}"
    assert body["duration"] > 0


def test_results_equal_cnvkit_run_by_hand(seed_run, cohort, tmp_path):
    """The same CNVkit commands with the same options give identical .cnr/.cns/.call.cns."""
    request, out = seed_run["request"], seed_run["out"]

    def opts(field: str) -> list[str]:
        return shlex.split(request[field])

    def cnvkit(*args) -> None:
        subprocess.run([CNVKIT, *map(str, args)], cwd=tmp_path, check=True, capture_output=True)

    cpus = str(min(5, os.cpu_count()))
    coverage_opts = [t for t in opts("coverage_conf") if t not in ("-p", "5")]
    cnvkit("access", cohort.ref, "-o", "access.bed")
    cnvkit("target", cohort.bed, *opts("target_conf"), "-o", "targets.bed")
    cnvkit("antitarget", "targets.bed", "-g", "access.bed", *opts("antitarget_conf"),
           "-o", "antitargets.bed")
    for name, bam in cohort.bams.items():
        for kind in ("target", "antitarget"):
            cnvkit("coverage", bam, f"{kind}s.bed", *coverage_opts, "-p", cpus,
                   "-o", f"{name}.{kind}coverage.cnn")
    controls = [f"{n}.{k}coverage.cnn" for n in ("Father_S5_ALL", "Mather_S1_ALL")
                for k in ("antitarget", "target")]
    cnvkit("reference", *sorted(controls), "-f", cohort.ref, *opts("reference_conf"),
           "-o", "reference.cnn")
    cnvkit("fix", "Son_S2_ALL.targetcoverage.cnn", "Son_S2_ALL.antitargetcoverage.cnn",
           "reference.cnn", *opts("fix_conf"), "-o", "Son_S2_ALL.cnr")
    cnvkit("segment", "Son_S2_ALL.cnr", *opts("segment_conf"), "-p", "1", "-o", "Son_S2_ALL.cns")
    cnvkit("segmetrics", "Son_S2_ALL.cnr", "-s", "Son_S2_ALL.cns", *SEGMETRICS,
           "-o", "Son_S2_ALL.segmetrics.cns")
    cnvkit("call", "Son_S2_ALL.segmetrics.cns", *opts("call_conf"), "-o", "Son_S2_ALL.call.cns")
    cnvkit("genemetrics", "Son_S2_ALL.cnr", "-s", "Son_S2_ALL.cns", *opts("genemetrics_conf"),
           "-o", "Son_S2_ALL.genemetrics.tsv")
    cnvkit("bintest", "Son_S2_ALL.cnr", "-s", "Son_S2_ALL.cns", "-t",
           "-o", "Son_S2_ALL.bintest.cns")
    for kind in ("vcf", "bed"):  # the seed's call_conf has no sex options to pass on
        cnvkit("export", kind, "Son_S2_ALL.call.cns", "-i", "Son_S2_ALL",
               "-o", f"Son_S2_ALL.{kind}")
    cnvkit("sex", *sorted([f"{n}.targetcoverage.cnn" for n in cohort.bams] + ["Son_S2_ALL.cnr"]),
           *opts("sex_conf"), "-o", "sex.tsv")
    cnvkit("export", "seg", "Son_S2_ALL.cns", "-o", "cohort.seg")
    cnvkit("metrics", "Son_S2_ALL.cnr", "-s", "Son_S2_ALL.cns", "-o", "metrics.tsv")
    for name in ("Son_S2_ALL.cnr", "Son_S2_ALL.cns", "Son_S2_ALL.segmetrics.cns",
                 "Son_S2_ALL.call.cns", "Son_S2_ALL.genemetrics.tsv", "Son_S2_ALL.bintest.cns",
                 "Son_S2_ALL.bed"):
        ours = (out / "samples" / "Son_S2_ALL" / name).read_text()
        assert ours == (tmp_path / name).read_text(), name
    assert (without_date(out / "samples" / "Son_S2_ALL" / "Son_S2_ALL.vcf")
            == without_date(tmp_path / "Son_S2_ALL.vcf"))
    assert (tmp_path / "Son_S2_ALL.genemetrics.tsv").read_text().count("\n") > 1  # has genes
    assert "ci_lo" in (tmp_path / "Son_S2_ALL.call.cns").read_text().splitlines()[0]
    for name in ("reference/reference.cnn", "sex/sex.tsv", "cohort/cohort.seg",
                 "cohort/metrics.tsv"):
        assert (out / name).read_text() == (tmp_path / Path(name).name).read_text(), name


def test_flat_reference_and_gene_symbols(cohort, nextflow_bin, tmp_path):
    """No controls: a flat reference; GENCODE GFF3 annotation: targets named by gene symbol.
    The folder held an earlier result: its manifest is replaced, its leftovers not vouched for.
    The FASTA's .fai is stale: the launcher's check decides, and the run builds, a new one."""
    fasta = Path(shutil.copy(cohort.ref, tmp_path / "genome.fa"))
    fai = Path(shutil.copy(f"{cohort.ref}.fai", f"{fasta}.fai"))
    os.utime(fai, (0, 0))
    request = seed_request(cohort, tmp_path / "out", control_inputs=[], has_annotate=True,
                           sex_conf="", target_conf="", ref=str(fasta))
    (tmp_path / "request.json").write_text(json.dumps(request))
    stale = tmp_path / "out" / "samples" / "Old_S8" / "Old_S8.call.cns"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an earlier request\n")
    manifest.write(tmp_path / "out", instance_id="earlier")
    result = launch(["run", str(tmp_path / "request.json"), "--work-dir", str(tmp_path / "w")],
                    tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "published " in result.stderr
    # --work-dir was used: the run's task folders were made there, then deleted once published
    used = re.escape(str(tmp_path / "w"))
    assert re.search(rf"work dir deleted \(\d+ bytes freed[^)]*\): {used}$", result.stderr,
                     re.MULTILINE), result.stderr
    assert (tmp_path / "w").is_dir() and not list((tmp_path / "w").glob("*/*/.command.sh"))
    assert manifest.verify(tmp_path / "out") == [f"{stale.relative_to(tmp_path / 'out')}: "
                                                 "not in the manifest"]
    ran = [row["process"].split(":")[-1]
           for row in read_table(tmp_path / "out" / "pipeline_info" / "trace.tsv")]
    assert "SAMTOOLS_FAIDX" in ran and "CHECK_INPUTS" not in ran and fai.stat().st_mtime == 0
    reference = read_table(tmp_path / "out" / "reference" / "reference.cnn")
    autosomal = {float(row["log2"]) for row in reference if row["chromosome"] in ("chr1", "chr2")}
    assert autosomal == {0.0}
    names = {row[3] for row in csv.reader(open(tmp_path / "out" / "reference" / "targets.bed"),
                                          delimiter="\t")}
    symbols = set(cohort.genes)
    assert names & symbols, "targets must carry gene symbols"
    assert not any(name.startswith("ENSG") for name in names)
    genes = {row["gene"] for row in read_table(
        tmp_path / "out" / "samples" / "Son_S2_ALL" / "Son_S2_ALL.genemetrics.tsv")}
    assert genes and genes <= symbols | {"-", "Antitarget"}


def test_bad_input_stops_before_anything_runs(cohort, nextflow_bin, tmp_path):
    unsorted = tmp_path / "Unsorted_S9.bam"
    subprocess.run(["samtools", "sort", "-n", "-o", str(unsorted),
                    str(cohort.bams["Son_S2_ALL"])], check=True)
    request = seed_request(cohort, tmp_path / "out",
                           experimental_inputs=[str(unsorted), str(tmp_path / "Missing_S1.bam")])
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = launch(["run", str(tmp_path / "request.json")], tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 1
    assert "experimental_inputs[0]" in result.stderr and "coordinate" in result.stderr
    assert f"experimental_inputs[0]: {unsorted}: not coordinate-sorted" in result.stderr
    assert "cnvkit-nf-check-" not in result.stderr  # the user's paths, not the checked links
    assert "experimental_inputs[1]" in result.stderr
    assert "instance_id" not in result.stdout
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "state" / "runs").exists()


def test_validate_can_check_inputs(cohort, tmp_path):
    request = seed_request(cohort, tmp_path / "out", bed=str(tmp_path / "empty.bed"))
    (tmp_path / "empty.bed").write_text("")
    (tmp_path / "request.json").write_text(json.dumps(request))
    assert launch(["validate", str(tmp_path / "request.json")], tmp_path).returncode == 0
    checked = launch(["validate", "--check-inputs", str(tmp_path / "request.json")], tmp_path)
    assert checked.returncode == 1
    assert "bed: " in checked.stderr and "no intervals" in checked.stderr


def test_failed_job_reports_why(cohort, nextflow_bin, tmp_path):
    """A task the executor cannot run: the job ends FAILED with Nextflow's reason, no manifest."""
    (tmp_path / "huge.config").write_text(
        "process.resourceLimits = [cpus: 2, memory: '100000.GB', time: '1.h']\n"
        "process { withName: 'CNVKIT_PREPARE' { memory = '50000.GB' } }\n")
    request = seed_request(cohort, tmp_path / "out")
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = launch(["run", str(tmp_path / "request.json"), "-c", str(tmp_path / "huge.config")],
                    tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "status: FAILED" in result.stdout and "CNVKIT_PREPARE" in result.stdout
    job_id = result.stdout.splitlines()[0].split(": ", 1)[1]
    body = json.loads(launch(["status", job_id, "--json"], tmp_path / "state").stdout)
    assert body["status"] == "FAILED" and "memory" in body["message"].lower()
    assert not (tmp_path / "out").exists()


def test_cancel_stops_the_run_without_manifest(cohort, nextflow_bin, tmp_path):
    request = seed_request(cohort, tmp_path / "out")
    (tmp_path / "request.json").write_text(json.dumps(request))
    process = subprocess.Popen(
        [str(LAUNCHER), "--state-dir", str(tmp_path / "state"), "run",
         str(tmp_path / "request.json")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    job_id = process.stdout.readline().split(": ", 1)[1].strip()
    store = JobStore(tmp_path / "state" / "jobs.sqlite")
    deadline = time.monotonic() + 120
    while store.get(job_id).tasks_done < 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 130
    job = store.get(job_id)
    assert job.status == "CANCELLED"
    assert not (tmp_path / "out").exists()  # results reach output_dir only after success
    nextflow_pid = job.pid
    with pytest.raises(ProcessLookupError):
        os.kill(nextflow_pid, 0)


def nextflow_run(nextflow_bin: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`nextflow run main.nf ARGS` as a user types it (no launcher), the venv's tools on PATH."""
    env = {**os.environ, "NXF_OFFLINE": "true",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run([nextflow_bin, "run", str(ROOT / "main.nf"), *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def test_direct_nextflow_run_rejects_hostile_options(nextflow_bin, tmp_path):
    result = nextflow_run(
        nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
        "--segment_conf", "-m cbs; touch pwned", "--output_dir", str(tmp_path / "out"),
        "--bed", str(tmp_path / "x$(touch pwned).bed"))
    assert result.returncode != 0
    assert "segment_conf: only ASCII letters, digits" in result.stdout  # the schema's rules
    assert "bed: file name may only contain letters" in result.stdout
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())
    assert not (tmp_path / "pwned").exists()


def test_direct_run_checks_options_and_ends_with_a_manifest(nextflow_bin, seed_run, tmp_path):
    """`nextflow run . -params-file`, as from a shell or a Tower launch (no launcher): CNVkit's
    parsers refuse a hostile option string before any CNVkit task; a valid request ends with a
    manifest that verifies, and with the launcher job's calls."""
    request = seed_run["request"]
    validation = validate_request(request)
    assert validation.ok, validation.problems
    params = to_params(validation.request,
                       staged={request["output_dir"]: tmp_path / "out"})
    hostile = tmp_path / "hostile"
    hostile.mkdir()
    (hostile / "params.json").write_text(json.dumps({
        **params, "fix_conf": "--no-edge --frobnicate",
        "segment_conf": "-m cbs --rscript-path /bin/sh", "output_dir": str(hostile / "out")}))
    result = nextflow_run(nextflow_bin, hostile, "-profile", "local",
                          "-params-file", str(hostile / "params.json"))
    assert result.returncode != 0
    assert "error: fix_conf: cnvkit.py fix: unrecognized arguments: --frobnicate" in result.stdout
    assert "error: segment_conf: --rscript-path is set by the pipeline, not by users" \
        in result.stdout
    ran = [row["process"] for row in read_table(hostile / "out" / "pipeline_info" / "trace.tsv")]
    assert ran == ["CNVKIT:CHECK_INPUTS"] and not (hostile / "out" / "manifest.json").exists()

    (tmp_path / "params.json").write_text(json.dumps(params))
    result = nextflow_run(nextflow_bin, tmp_path, "-profile", "local",
                          "-params-file", str(tmp_path / "params.json"))
    assert result.returncode == 0, result.stdout
    out = tmp_path / "out"
    assert manifest.verify(out) == []
    ours, theirs = (
        [entry["path"] for entry in json.loads((folder / "manifest.json").read_text())["files"]]
        for folder in (out, seed_run["out"]))
    assert ours == theirs
    calls = "samples/Son_S2_ALL/Son_S2_ALL.call.cns"
    assert (out / calls).read_bytes() == (seed_run["out"] / calls).read_bytes()
    ran = [row["process"].split(":")[-1] for row in read_table(out / "pipeline_info" / "trace.tsv")]
    assert "CHECK_INPUTS" in ran and "RESULT_MANIFEST" in ran


def test_direct_run_enforces_the_generated_schema(nextflow_bin, tmp_path):
    """main.nf reads nextflow_schema.json itself: each param's type, pattern, enum and limits,
    every problem at once, before any task."""
    params = {"experimental_inputs": ["/data/Son S2.bam", "/data/ok.bam"],
              "control_inputs": ["/data/N1.bam"],
              "ref": "/data/ref.fa", "bed": "/data/t.bed", "output_dir": str(tmp_path / "out"),
              "max_cpus": 0, "publish_dir_mode": "move", "segment_conf": "-m cbs\n-t 1",
              "max_memory": "lots", "plots": "yes", "reference_cnn": "/data/ref.txt"}
    (tmp_path / "params.json").write_text(json.dumps(params))
    result = nextflow_run(nextflow_bin, tmp_path, "-params-file", str(tmp_path / "params.json"))
    assert result.returncode != 0
    for said in ("experimental_inputs[0]: must be a BAM (.bam) or CRAM (.cram) file whose name",
                 "max_cpus: must be at least 1, got 0",
                 "publish_dir_mode: must be one of copy, copyNoFollow, link",
                 "segment_conf: only ASCII letters",  # a newline is no space
                 "max_memory: must match", "plots: must be true or false, got 'yes'",
                 "reference_cnn: must be a CNVkit reference (.cnn)",
                 "control_inputs: must be [] when reference_cnn is given"):
        assert said in result.stdout, said
    assert "experimental_inputs[1]" not in result.stdout
    assert not (tmp_path / "work").exists() or not any((tmp_path / "work").iterdir())


def test_stub_run_wires_every_output(nextflow_bin, tmp_path):
    """Every output, genes of interest's tables too (given as a list in a params file)."""
    inputs = sorted((ROOT / "tests" / "data" / "stub").iterdir())
    before = [path.stat().st_mtime_ns for path in inputs]
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"genes_of_interest": ["EGFR", "CDKN2A"]}))
    result = nextflow_run(
        nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub", "-params-file", str(params),
        "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout
    out = tmp_path / "out"
    for name in ("reference/reference.cnn", "reference/annotation.bed", "sex/sex.tsv",
                 "pipeline_info/versions.yml", "coverage/normal_C.targetcoverage.cnn",
                 *RESULTS_PER_JOB, "cohort/heatmap.png", "report.html"):
        assert (out / name).exists(), name
    for sample in ("tumour_A", "tumour_D"):
        for suffix in (*RESULTS_PER_TUMOUR, *PLOTS_PER_TUMOUR, ".genes_of_interest.tsv"):
            assert (out / "samples" / sample / f"{sample}{suffix}").exists(), (sample, suffix)
    listed = {entry["path"] for entry in json.loads((out / "manifest.json").read_text())["files"]}
    assert {"samples/tumour_A/tumour_A.genes_of_interest.tsv",
            "samples/tumour_D/tumour_D-diagram.svg"} <= listed
    for sample in ("tumour_A", "tumour_D", "normal_B", "normal_C"):
        for kind in ("target", "antitarget"):
            assert (out / "coverage" / f"{sample}.{kind}coverage.cnn").exists(), (sample, kind)
    # outputs named like an input (targets.bed) must not be written through its staged link
    assert [path.stat().st_mtime_ns for path in inputs] == before


def test_stub_run_without_plots(nextflow_bin, tmp_path):
    """`--plots false`: no scatter, diagram, heatmap or report.html; everything else."""
    result = nextflow_run(nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
                          "--plots", "false", "--output_dir", str(tmp_path / "out"))
    assert result.returncode == 0, result.stdout
    out = tmp_path / "out"
    assert all((out / name).exists() for name in RESULTS_PER_JOB)
    assert all((out / "samples" / "tumour_A" / f"tumour_A{suffix}").exists()
               for suffix in RESULTS_PER_TUMOUR)
    plots = [p.name for p in out.rglob("*") if p.suffix in (".png", ".pdf", ".svg")]
    assert plots == [] and not (out / "report.html").exists()
    assert not list(out.rglob("*.genes_of_interest.tsv"))  # none asked for
    refused = nextflow_run(nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
                           "--plots", "maybe", "--output_dir", str(tmp_path / "out2"))
    assert refused.returncode != 0 and "plots: must be true or false" in refused.stdout


def test_max_cpus_param_caps_cpu_requests(nextflow_bin, tmp_path):
    """`--max_cpus` (command line, params file or Tower form) reaches process.resourceLimits:
    the task of the two tumours' calls, each segment -p 2, asks for at most that many CPUs."""
    cpus = {}
    for max_cpus in ("1", "2"):
        out = tmp_path / max_cpus
        result = nextflow_run(
            nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
            "--output_dir", str(out), "--segment_conf=-p 2", "--max_cpus", max_cpus)
        assert result.returncode == 0, result.stdout
        cpus[max_cpus] = {row["cpus"] for row in read_table(out / "pipeline_info" / "trace.tsv")
                          if row["process"].endswith("CNVKIT_SAMPLE")}
    assert cpus == {"1": {"1"}, "2": {"2"}}


@pytest.mark.parametrize(("exit_code", "retried"), [(137, True), (1, False)])
def test_only_resource_kills_are_retried(nextflow_bin, tmp_path, exit_code, retried):
    """A task killed for resources (137 = SIGKILL, e.g. out of memory) runs again with twice the
    memory; any other failure stops the run."""
    (tmp_path / "fail.config").write_text(
        "process { withName: 'CNVKIT_PREPARE' { beforeScript = "
        f"{{ \"[ ${{task.attempt}} -gt 1 ] || exit {exit_code}\" }} }} }}\n")
    result = nextflow_run(
        nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
        "-c", str(tmp_path / "fail.config"), "--output_dir", str(tmp_path / "out"))
    attempts = [(row["status"], row["exit"], row["memory"])
                for row in read_table(tmp_path / "out" / "pipeline_info" / "trace.tsv")
                if row["process"].endswith("CNVKIT_PREPARE")]
    if retried:
        assert result.returncode == 0, result.stdout
        assert attempts == [("FAILED", "137", "2 GB"), ("COMPLETED", "0", "4 GB")]
    else:
        assert result.returncode != 0
        assert attempts == [("FAILED", "1", "2 GB")]


def test_stale_index_is_rebuilt_not_overwritten(nextflow_bin, tmp_path):
    """An index older than its BAM or FASTA is rebuilt in the work dir, as the input check
    decided; the user's file stays as it was."""
    for path in (ROOT / "tests" / "data" / "stub").iterdir():
        shutil.copy(path, tmp_path / path.name)
    fresh, stale = tmp_path / "tumour_A.sort.mkdup.bam", tmp_path / "normal_B.sort.mkdup.bam"
    (tmp_path / f"{fresh.name}.bai").touch()
    (tmp_path / f"{stale.name}.bai").write_text("old index")
    os.utime(tmp_path / f"{stale.name}.bai", (0, 0))
    fai = tmp_path / "genome.fa.fai"  # older than the FASTA: stale
    fai.write_text("chr1\t4\t6\t4\t5\n")
    os.utime(fai, (0, 0))
    result = nextflow_run(
        nextflow_bin, tmp_path, "-profile", "test_stub,local", "-stub",
        "--output_dir", str(tmp_path / "out"), "--experimental_inputs", str(fresh),
        "--control_inputs", str(stale), "--ref", str(tmp_path / "genome.fa"))
    assert result.returncode == 0, result.stdout
    ran = read_table(tmp_path / "out" / "pipeline_info" / "trace.tsv")
    indexed = {row["tag"] for row in ran if row["process"].endswith("SAMTOOLS_INDEX")}
    assert indexed == {"normal_B"}
    assert [row["tag"] for row in ran if row["process"].endswith("SAMTOOLS_FAIDX")] == \
        ["genome.fa"]
    assert (tmp_path / f"{stale.name}.bai").read_text() == "old index"
    assert fai.read_text() == "chr1\t4\t6\t4\t5\n" and fai.stat().st_mtime == 0
    trace = read_table(tmp_path / "out" / "pipeline_info" / "trace.tsv")  # the workflow's count
    assert int((tmp_path / "out" / "pipeline_info" / "tasks.txt").read_text()) == len(trace)


def test_direct_run_checks_inputs_before_any_other_task(nextflow_bin, small_cohort, tmp_path):
    """`nextflow run` without the launcher: a bad BAM fails the check, and nothing else runs
    (no index is built for it, no CNVkit task starts), with the file and the reason."""
    fake = tmp_path / "Fake.bam"
    fake.write_text("not a BAM\n")
    ref = tmp_path / "genome.fa"  # no .fai: the check reads the FASTA; indexing waits for it
    shutil.copy(small_cohort.ref, ref)
    result = nextflow_run(
        nextflow_bin, tmp_path, "-profile", "local",
        "--experimental_inputs", str(fake), "--control_inputs", str(small_cohort.controls[0]),
        "--ref", str(ref), "--bed", str(small_cohort.bed), "--output_dir", str(tmp_path / "out"))
    assert result.returncode != 0
    assert f"{fake.name}: is a text file, not a BAM file" in result.stdout
    ran = {row["process"].split(":")[-1]
           for row in read_table(tmp_path / "out" / "pipeline_info" / "trace.tsv")}
    assert ran == {"CHECK_INPUTS"}


def test_a_cram_tumour_gives_the_bams_calls(seed_run, cohort, tmp_path):
    """CRAM next to BAM (beyond the seed): the tumour's reads as CRAM, read with the request's
    FASTA, give the calls of its BAM; its index (.crai) is built."""
    cram = tmp_path / "Son_S2_ALL.sort.mkdup.cram"
    pysam.view("-C", "-T", str(cohort.ref), "-o", str(cram), str(cohort.bams["Son_S2_ALL"]),
               catch_stdout=False)
    request = {**seed_run["request"], "experimental_inputs": [str(cram)], "control_inputs": [],
               "reference_cnn": str(seed_run["out"] / "reference" / "reference.cnn"),
               "output_dir": str(tmp_path / "out")}
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = launch(["run", str(tmp_path / "request.json")], tmp_path / "state", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for suffix in (".cnr", ".cns", ".call.cns"):
        name = f"samples/Son_S2_ALL/Son_S2_ALL{suffix}"
        assert (tmp_path / "out" / name).read_bytes() == (seed_run["out"] / name).read_bytes()
    ran = [row["process"].split(":")[-1]
           for row in read_table(tmp_path / "out" / "pipeline_info" / "trace.tsv")]
    assert "SAMTOOLS_INDEX" in ran and manifest.verify(tmp_path / "out") == []
