"""The launcher's pieces without Nextflow: params, pipeline schema, job store, manifest, CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from cnvkit_nf.cli import main as cli_main
from cnvkit_nf.contract import pipeline_schema
from cnvkit_nf.contract.params import ParamsError, to_params
from cnvkit_nf.contract.paths import index_names, parse_location
from cnvkit_nf.contract.request import sample_name, validate_request
from cnvkit_nf.launch import nextflow
from cnvkit_nf.launch.runner import (
    JobRun,
    RunOptions,
    exit_file,
    failure_message,
    tasks_done,
    tasks_total,
)
from cnvkit_nf.launch.submission import destination, occupied
from cnvkit_nf.state.jobs import (
    CANCELING,
    CANCELLED,
    FAILED,
    FINISHED,
    LAUNCHING,
    RUNNING,
    Failure,
    IllegalTransition,
    JobStore,
    Occupied,
)
from cnvkit_nf.storage import manifest
from cnvkit_nf.storage.confined import everywhere

ROOT = Path(__file__).resolve().parents[2]
SEED = json.loads((ROOT / "tests" / "data" / "seed_request.json").read_text())


def local_seed(tmp_path: Path, **changes) -> dict:
    request = {
        **SEED,
        "experimental_inputs": ["data/Son_S2_ALL.sort.mkdup.bam"],
        "control_inputs": ["data/Father_S5_ALL.sort.mkdup.bam", "/abs/Mather_S1_ALL.bam"],
        "output_dir": "out/",
        "ref": "data/hg38.filtered.fa",
        "bed": "data/tEXOME2_ext50.bed",
        "annotation_file": "data/gencode.v29.annotation.gff3",
    }
    return {**request, **changes}


def params_of(request: dict, base: Path) -> dict:
    validation = validate_request(request)
    assert validation.ok, validation.problems
    return to_params(validation.request, base=base)


def test_params_of_the_seed_shaped_request(tmp_path):
    params = params_of(local_seed(tmp_path), tmp_path)
    assert params["experimental_inputs"] == [str(tmp_path / "data/Son_S2_ALL.sort.mkdup.bam")]
    assert params["control_inputs"][1] == "/abs/Mather_S1_ALL.bam"
    assert params["output_dir"] == str(tmp_path / "out")
    assert "annotation_file" not in params and params["has_annotate"] is False
    assert params["coverage_conf"] == "-q 10 -p 5"  # re-quoted, -p last
    assert params["checked_options"]["coverage_conf"] == {"args": "-q 10", "processes": 5}
    assert params["segment_conf"] == "-m cbs --drop-low-coverage -t 0.001 --drop-outliers 5"
    assert params["checked_options"]["segment_conf"]["processes"] is None
    assert params["sex_conf"] == "-y" and "max_cpus" not in params  # the profile decides


def test_params_validate_against_the_pipeline_schema(tmp_path):
    schema = json.loads((ROOT / "nextflow_schema.json").read_text())
    for request in (local_seed(tmp_path), local_seed(tmp_path, has_annotate=True,
                                                      control_inputs=[], coverage_conf="")):
        params = params_of(request, tmp_path)
        errors = list(Draft202012Validator(schema).iter_errors(params))
        assert errors == []
    params["coverage_conf"] = "-q 10; rm -rf /"
    assert list(Draft202012Validator(schema).iter_errors(params))


def test_committed_pipeline_schema_is_generated():
    assert (ROOT / "nextflow_schema.json").read_text() == pipeline_schema.render()
    assert (ROOT / "assets" / "schema_samplesheet.json").read_text() == \
        pipeline_schema.render(pipeline_schema.samplesheet_schema())


def test_the_samplesheet_schema_holds_the_requests_row_rules():
    """A sheet's rows (as nf-schema reads them: typed cells, `sample` for the id) meet the
    samplesheet schema when they meet the request's row rules, and break the same rules."""
    sheet = Draft202012Validator(pipeline_schema.samplesheet_schema())
    good = [{"sample": "T1", "bam": "/d/t1.bam", "role": "experimental", "sex": "female",
             "purity": 0.6, "ploidy": 3, "vcf": "/d/t1.vcf.gz", "vcf_sample": "TUMOR",
             "normal": "N1"},
            {"sample": "N1", "bam": "/d/n1.cram", "role": "control", "sex": "female"}]
    assert list(sheet.iter_errors(good)) == []
    bad = [{"bam": "/d/t1.bam", "role": "experimental", "purity": 0, "vcf_sample": "T"},
           {"bam": "/d/n1.bam", "role": "control", "vcf": "/d/n1.vcf", "id": "N1"}]
    broken = {(tuple(e.absolute_path), e.validator) for e in sheet.iter_errors(bad)}
    assert broken == {((0, "purity"), "exclusiveMinimum"), ((0,), "required"),
                      ((1, "vcf"), "not"), ((1,), "additionalProperties")}


def test_the_pipeline_schema_carries_the_packages_rules_for_main_nf():
    """main.nf names a sample by the input pattern's group, and finds a reused reference's
    record by x-record: the package's own rules."""
    inputs = json.loads((ROOT / "nextflow_schema.json").read_text())["$defs"]["input_options"]
    pattern = inputs["properties"]["experimental_inputs"]["items"]["pattern"]
    for path in ("s3a://genes/cnvkit/Son_S2_ALL.sort.mkdup.bam", "/d/a.b/X-1.x.cram", "N.bam"):
        assert re.fullmatch(pattern, path).group(1) == sample_name(path)
    record = inputs["properties"]["reference_cnn"]["x-record"]
    assert [re.sub(record["pattern"], record["replacement"], "a/x.cnn")] == \
        index_names("reference_cnn", "a/x.cnn") == ["a/x.json"]


def test_the_launch_form_passes_nf_cores_schema_linter():
    """`nf-core pipelines schema lint` (nf-core/tools in its own venv: `make test` installs it)
    finds nothing to warn about."""
    linter = ROOT / "tools" / "nf-core" / "venv" / "bin" / "nf-core"
    assert linter.exists(), "nf-core/tools is missing: run `make test` (or the $(NFCORE) " \
        "target of the Makefile) to install it into tools/nf-core/venv"
    env = {**os.environ, "NXF_OFFLINE": "true",
           "PATH": f"{Path(nextflow.find()).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(linter), "pipelines", "schema", "lint", "nextflow_schema.json"],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "Pipeline schema looks valid" in output and "WARNING" not in output, output


def test_object_storage_paths_need_staging(tmp_path):
    with pytest.raises(ParamsError) as err:
        params_of(SEED, tmp_path)
    fields = {problem.field for problem in err.value.problems}
    assert fields == {"experimental_inputs[0]", "control_inputs[0]", "control_inputs[1]",
                      "ref", "bed", "output_dir"}
    assert "only used through object storage staging" in str(err.value)


def test_tasks_total_is_what_the_workflow_wrote(tmp_path):
    assert tasks_total(tmp_path) is None  # the run has not started yet
    (tmp_path / "pipeline_info").mkdir()
    (tmp_path / "pipeline_info" / "tasks.txt").write_text("13")
    assert tasks_total(tmp_path) == 13


def test_tasks_done_counts_completed_and_cached(tmp_path):
    trace = tmp_path / "trace.tsv"
    assert tasks_done(trace) == 0
    trace.write_text("task_id\tstatus\n1\tCOMPLETED\n2\tFAILED\n3\tCACHED\n4\tCOMPLETED\n")
    assert tasks_done(trace) == 3


def test_failure_message_keeps_the_command_error():
    log = "\n".join([
        "[ab/cdef12] Submitted process > CNVKIT:CHECK_INPUTS (1 BAMs)",
        "ERROR ~ Error executing process > 'CNVKIT:CHECK_INPUTS (1 BAMs)'",
        "", "Caused by:", "  Process `CNVKIT:CHECK_INPUTS (1 BAMs)` terminated with an error exit "
        "status (1)", "", "Command executed:", "", "  check_inputs.py ...", "",
        "Command error:", "  error: x.bam: not coordinate-sorted", "", "Work dir:", "  /w",
    ])
    message = failure_message(log, 1)
    assert message.splitlines()[0] == "Error executing process > 'CNVKIT:CHECK_INPUTS (1 BAMs)'"
    assert "error: x.bam: not coordinate-sorted" in message
    assert failure_message("boom\n", 1) == ("Nextflow ended (exit status 1) without an error "
                                            "report; the last lines of its log: boom")


@pytest.mark.parametrize(("status", "said"), [
    (-9, "Nextflow ended (killed by signal 9, SIGKILL) without an error report"),
    (137, "Nextflow ended (exit status 137: killed by signal 9, SIGKILL) without an error"),
    (143, "Nextflow ended (exit status 143: killed by signal 15, SIGTERM) without an error"),
])
def test_a_killed_nextflow_is_a_failure_with_its_exit_status(tmp_path, status, said):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create(SEED, runs_in=tmp_path / "runs")
    run_dir = Path(job.run_dir)
    run_dir.mkdir(parents=True)
    (run_dir / "nextflow.out").write_text("[ab/cd] Submitted process > CNVKIT:CNVKIT_FIX (S)\n"
                                          "[ef/01] Submitted process > CNVKIT:CNVKIT_SEX\n")
    exit_file(run_dir).write_text(f"{status}\n")
    ended = JobRun(store, job, {"output_dir": str(run_dir / "results")}, RunOptions()).ended()
    assert not ended.cancelled
    assert ended.failure.startswith(said)
    assert ended.failure.endswith("Submitted process > CNVKIT:CNVKIT_SEX")


def test_job_store_round_trip(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create(SEED, tasks_total=16)
    assert job.status == "LAUNCHING" and job.progress == "0/16" and job.duration == 0
    store.update(job.instance_id, created=job.created - 5000)
    store.start(job.instance_id, pid=1, attempts=1)
    store.progress(job.instance_id, 3, 16)
    again = JobStore(tmp_path / "jobs.sqlite").get(job.instance_id)
    assert (again.status, again.progress, again.request) == (RUNNING, "3/16", SEED)
    assert again.duration >= 5
    reordered = dict(reversed(list(SEED.items())))
    assert store.latest_for_request(reordered).instance_id == job.instance_id
    assert store.latest_for_request({**SEED, "fix_conf": ""}) is None
    with pytest.raises(ValueError):
        store.update(job.instance_id, colour="red")
    assert store.finish(job.instance_id).final


def test_a_job_moves_only_through_its_named_transitions(tmp_path):
    """The store alone changes a job's state, sets the times that go with it and refuses a
    move its state does not allow."""
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create(SEED)
    with pytest.raises(ValueError, match="set by the job's transitions"):
        store.update(job.instance_id, status=FINISHED)
    with pytest.raises(IllegalTransition, match="cannot finish job .*: it is LAUNCHING"):
        store.finish(job.instance_id)
    running = store.start(job.instance_id, pid=7, attempts=1)
    assert (running.status, running.start_time is not None, running.end_time) == (
        RUNNING, True, None)
    assert store.request_cancel(job.instance_id).status == CANCELING
    assert store.request_cancel(job.instance_id) is None  # already being cancelled
    ended = store.cancelled(job.instance_id)
    assert ended.status == CANCELLED and ended.end_time >= running.start_time
    # the family keeps `message` for failures: a cancel and other notices are warnings
    assert (ended.message, ended.warnings) == (None, ["cancelled on request"])
    warned = store.warn(job.instance_id, "b", "cancelled on request", "a", "b")
    assert warned.warnings == ["cancelled on request", "b", "a"]  # each once, in order
    with pytest.raises(IllegalTransition):
        store.fail(job.instance_id, "too late", Failure.WORKFLOW)
    assert store.progress(job.instance_id, 5, 9).progress == "0/0"  # ended: unchanged
    again = store.retry(job.instance_id)
    assert (again.status, again.end_time, again.message, again.warnings) == (
        LAUNCHING, None, None, [])
    assert store.withdraw(job.instance_id).status == CANCELLED
    assert store.withdraw(job.instance_id) is None
    failed = store.fail(store.create(SEED).instance_id, "no FASTA", Failure.REFUSED)
    assert failed.status == FAILED and failed.end_time and failed.message == "no FASTA"
    assert store.get(failed.instance_id).failure == Failure.REFUSED  # its kind, as stored
    assert store.retry(failed.instance_id).failure is None


def test_jobs_that_would_publish_into_one_folder_at_once_are_refused(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    out = tmp_path / "out"
    (tmp_path / "link").symlink_to(out, target_is_directory=True)
    out.mkdir()
    here = everywhere()

    def claim(output_dir: str) -> str:
        place, problems = destination(parse_location(output_dir), here)
        assert problems == []
        return place

    first = store.create(SEED, destination=claim(f"{out}/a"))
    assert first.destination == f"{out}/a/"
    for clash in (f"{tmp_path}/link/a/", f"{out}/a/inner", str(out)):
        with pytest.raises(Occupied) as refused:
            store.create(SEED, destination=claim(clash))
        assert refused.value.job.instance_id == first.instance_id
    beside = store.create(SEED, destination=claim(f"{out}/ab"))
    assert beside.destination == f"{out}/ab/"  # only starts alike: not the same folder
    assert claim("s3a://bucket/x//y/") == "s3://bucket/x//y/"
    assert claim("s3://bucket/x") == "s3://bucket/x/"

    problem = occupied(refused.value)
    assert problem.field == "output_dir" and f"job {first.instance_id} (LAUNCHING)" in \
        problem.message
    store.fail(first.instance_id, "boom", Failure.SYSTEM)
    second = store.create(SEED, destination=f"{out}/a/")  # free once the first ended
    with pytest.raises(Occupied):
        store.retry(first.instance_id)
    assert store.get(first.instance_id).status == FAILED
    store.cancelled(second.instance_id)
    assert store.retry(first.instance_id).status == LAUNCHING


def test_jobs_are_compared_only_with_their_own_projects_jobs(tmp_path):
    """A job of lab-a recorded with a destination in lab-b's folder (as a folder swapped for a
    link once let one be) neither blocks lab-b's jobs nor is revealed to them."""
    store = JobStore(tmp_path / "jobs.sqlite")
    theirs = str(tmp_path / "lab-b" / "out") + "/"
    planted = store.create(SEED, project="lab-a", destination=theirs)
    for place in (theirs, f"{theirs}inner/", str(tmp_path / "lab-b") + "/"):  # same, in, around
        job = store.create(SEED, project="lab-b", destination=place)
        assert store.cancelled(job.instance_id).status == CANCELLED
        assert store.retry(job.instance_id).status == LAUNCHING
        store.cancelled(job.instance_id)
    with pytest.raises(Occupied) as refused:  # lab-a's own jobs are still kept apart
        store.create(SEED, project="lab-a", destination=f"{theirs}inner/")
    assert refused.value.job.instance_id == planted.instance_id


def test_manifest_written_last_and_verified(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.cns").write_text("1\n")
    (tmp_path / "y.tsv").write_text("22\n")
    (tmp_path / "pipeline_info").mkdir()  # Nextflow's logs, written after the manifest
    (tmp_path / "pipeline_info" / "trace.tsv").write_text("task_id\n")
    assert manifest.verify(tmp_path) == [f"{tmp_path / 'manifest.json'}: no manifest, the "
                                         "result is incomplete"]
    manifest.write(tmp_path, instance_id="abc")
    body = json.loads((tmp_path / "manifest.json").read_text())
    assert [entry["path"] for entry in body["files"]] == ["a/x.cns", "y.tsv"]
    assert body["instance_id"] == "abc" and body["files"][1]["size"] == 3
    assert manifest.verify(tmp_path) == []
    (tmp_path / "pipeline_info" / "trace.tsv").write_text("task_id\n1\n")
    assert manifest.verify(tmp_path) == []  # not covered
    (tmp_path / "a" / "x.cns").unlink()
    (tmp_path / "z").write_text("")
    assert manifest.verify(tmp_path) == ["a/x.cns: listed but missing", "z: not in the manifest"]


def cli(*args: str, cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout)


def test_cli_validate_seed_and_bad_request(tmp_path):
    ok = cli("validate", str(ROOT / "tests" / "data" / "seed_request.json"), cwd=tmp_path)
    assert ok.returncode == 0 and "valid" in ok.stdout
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SEED, "expermental_inputs": [], "coverage_conf": "$(id)",
                               "bed": 3}))
    result = cli("validate", "--json", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert body["valid"] is False
    fields = {problem["field"] for problem in body["problems"]}
    assert {"coverage_conf", "bed"} <= fields
    assert any("did you mean 'experimental_inputs'" in p["message"] for p in body["problems"])


def test_cli_params_and_usage_errors(tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps(local_seed(tmp_path)))
    result = cli("params", str(request), "-o", str(tmp_path / "params.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "params.json").read_text())["coverage_conf"] == "-q 10 -p 5"
    assert cli("run", cwd=tmp_path).returncode == 2
    missing = cli("status", "no-such-job", "--state-dir", str(tmp_path), cwd=tmp_path)
    assert missing.returncode == 2  # --state-dir belongs before the command
    unknown = cli("--state-dir", str(tmp_path), "status", "no-such-job", cwd=tmp_path)
    assert unknown.returncode == 1 and "no job no-such-job" in unknown.stderr


def test_job_store_pages_newest_first(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    ids = []
    for i in range(5):
        job = store.create({**SEED, "fix_conf": f"--no-gc {i}"}, tasks_total=3)
        store.update(job.instance_id, created=2000 + i * 10)
        ids.append(job.instance_id)
    store.create(SEED, project="other")
    count, page = store.list(limit=2, offset=1)
    assert count == 5 and [j.instance_id for j in page] == [ids[3], ids[2]]
    count, page = store.list(start=2010, end=2030)
    assert count == 3 and [j.instance_id for j in page] == [ids[3], ids[2], ids[1]]
    assert store.list(instance_id=ids[0])[0] == 1
    assert store.list(project="other")[0] == 1


def test_cli_lists_jobs(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite")
    job = store.create(SEED, tasks_total=7)
    result = cli("--state-dir", str(tmp_path), "list", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["count"] == 1 and body["instances"][0]["instance_id"] == job.instance_id
    assert body["instances"][0]["progress"] == "0/7"
    assert cli("--state-dir", str(tmp_path), "list", "--limit", "101", cwd=tmp_path).returncode == 2


@pytest.mark.parametrize(("version", "used"), [("24.10.1", True), ("25.04.4", True),
                                               ("24.04.4", False)])
def test_nextflow_on_path_is_used_from_24_10(tmp_path, monkeypatch, version, used) -> None:
    fake = tmp_path / "nextflow"
    fake.write_text(f"#!/bin/sh\necho '  N E X T F L O W\n  version {version} build 5928'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    expected = tuple(int(part) for part in version.split("."))
    assert nextflow.parse_version(f"version {version} build 1") == expected
    found = nextflow.find()
    assert (found == str(fake)) is used
    if not used:  # too old: the jars installed from Maven Central (make install) instead
        assert found == str(nextflow.WRAPPER)


def test_run_without_any_nextflow_exits_4(small_cohort, tmp_path, monkeypatch) -> None:
    """No `nextflow` on PATH, none installed, no java/mvn to install one: exit 4 with the
    install command, after the checks and before any job is recorded."""
    monkeypatch.setattr(nextflow, "STAMP", tmp_path / "not-installed")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    request = {**SEED, "experimental_inputs": [str(small_cohort.bams["Sample_1"])],
               "control_inputs": [str(bam) for bam in small_cohort.controls],
               "ref": str(small_cohort.ref), "bed": str(small_cohort.bed),
               "output_dir": str(tmp_path / "out")}
    (tmp_path / "request.json").write_text(json.dumps(request))
    result = CliRunner().invoke(cli_main, ["--state-dir", str(tmp_path / "state"), "run",
                                           str(tmp_path / "request.json")])
    assert result.exit_code == 4, result.output
    assert "apt-get install -y default-jre-headless maven" in result.output
    assert not (tmp_path / "state" / "jobs.sqlite").exists()
    assert not (tmp_path / "out").exists()


def test_cli_validate_refuses_what_is_not_a_request_file(tmp_path):
    """/dev/zero, a FIFO and deeply nested JSON get an answer at once, never a hang, an
    exhausted memory or a traceback."""
    fifo = tmp_path / "request.fifo"
    os.mkfifo(fifo)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    for path, said in ((Path("/dev/zero"), "/dev/zero is not a regular file"),
                       (fifo, f"{fifo} is not a regular file"),
                       (deep, "the JSON is nested more than 32 levels deep")):
        result = cli("validate", str(path), cwd=tmp_path, timeout=30)
        assert result.returncode == 1 and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_cli_verify_names_a_malformed_manifest(tmp_path):
    for text in ("{", '{"files": [{"path": "a"}]}', '{"files": 3}', "[]"):
        (tmp_path / "manifest.json").write_text(text)
        result = cli("verify", str(tmp_path), cwd=tmp_path)
        assert result.returncode == 1, text
        assert f"{tmp_path / 'manifest.json'}: not a valid manifest" in result.stderr, text
        assert "Traceback" not in result.stderr


def test_old_config_spellings_work_with_a_deprecation_message(tmp_path):
    """`--config` meant a Nextflow config for `run` and the service's settings for `serve`:
    now `-c/--nextflow-config` and `--service-config`; the old spelling still works."""
    extra = tmp_path / "extra.config"
    extra.write_text("")
    bad = tmp_path / "request.json"
    bad.write_text("{}")
    result = cli("--state-dir", str(tmp_path / "state"), "run", str(bad), "--config", str(extra),
                 cwd=tmp_path)
    assert "`run --config` is deprecated" in result.stderr and "-c/--nextflow-config" in \
        result.stderr
    assert result.returncode == 1 and "missing required field" in result.stderr  # it went on
    settings = tmp_path / "service.json"
    settings.write_text("{}")
    result = cli("--state-dir", str(tmp_path / "state"), "serve", "--config", str(settings),
                 cwd=tmp_path, timeout=60)
    assert "`serve --config` is deprecated" in result.stderr and "--service-config" in \
        result.stderr
    assert result.returncode == 1 and "no tokens are configured" in result.stderr


def test_the_pipeline_task_lists_staged_files_under_their_result_paths(tmp_path):
    """bin/result_manifest.py as RESULT_MANIFEST runs it: files staged as in/00001/NAME, ...,
    listed under the result paths given in the same order."""
    for number, text in ((1, "a\n"), (2, "bb\n"), (10, "c\n")):
        folder = tmp_path / "in" / f"{number:05d}"
        folder.mkdir(parents=True)
        (folder / "x.cns").write_text(text)
    (tmp_path / "paths.txt").write_text("samples/B/x.cns\nsamples/A/x.cns\nz.cns\n")
    (tmp_path / "job.json").write_text(json.dumps({"job": {"run_name": "sad_turing",
                                                           "request": {"bed": "t.bed"}}}))
    command = [sys.executable, str(ROOT / "bin" / "result_manifest.py"), "--paths",
               str(tmp_path / "paths.txt"), "--staged", str(tmp_path / "in"), "--job",
               str(tmp_path / "job.json"), "-o", str(tmp_path / "manifest.json")]
    assert subprocess.run(command).returncode == 0
    body = json.loads((tmp_path / "manifest.json").read_text())
    assert body["instance_id"] == "sad_turing" and body["request"] == {"bed": "t.bed"}
    assert [(f["path"], f["size"]) for f in body["files"]] == [
        ("samples/A/x.cns", 3), ("samples/B/x.cns", 2), ("z.cns", 2)]
    (tmp_path / "paths.txt").write_text("samples/B/x.cns\nz.cns\n")
    refused = subprocess.run(command, capture_output=True, text=True)
    assert refused.returncode == 2 and "3 staged files for 2 result paths" in refused.stderr


def test_a_vanished_run_is_failed_alike_by_list_and_status(tmp_path):
    """A `run` whose launcher was killed: `list` and `status` agree that it FAILED, and its
    duration stops growing (it has an end time)."""
    store = JobStore(tmp_path / "state" / "jobs.sqlite")
    job = store.create(SEED, runs_in=tmp_path / "state" / "runs")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    store.start(job.instance_id, pid=gone.pid, attempts=1)
    listed = cli("--state-dir", str(tmp_path / "state"), "list", "--json", cwd=tmp_path)
    assert [row["status"] for row in json.loads(listed.stdout)["instances"]] == ["FAILED"]
    shown = []
    for _ in range(2):
        status = cli("--state-dir", str(tmp_path / "state"), "status", job.instance_id,
                     "--json", cwd=tmp_path)
        shown.append(json.loads(status.stdout))
        time.sleep(1.2)
    assert [body["status"] for body in shown] == ["FAILED", "FAILED"]
    assert shown[0]["duration"] == shown[1]["duration"]
    assert store.get(job.instance_id).end_time is not None
