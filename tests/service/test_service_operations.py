"""What operators of the job service expect beyond the family's API, over real HTTP with the real
`nextflow` (stub runs): a failed job retried reusing its finished tasks, its log and failure in
full for its own project only, jobs that never publish into the same folder at once, and
projects kept apart in a writable shared root."""

from __future__ import annotations

import csv
import json
import os
import shutil
import time
import uuid

import pytest

from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.storage import manifest
from scaffold.demo import demo_request
from scaffold.local_service import LocalService
from tests.conftest import launch
from tests.service import test_service
from tests.service.test_service import ALICE, BOB, JOBS, job, request_for, start, submit, wait_for

site = test_service.site  # the fixture: data roots per project, a cohort, the config

pytestmark = pytest.mark.e2e

PLANTED = "planted failure of CNVKIT_SAMPLE"


@pytest.fixture(scope="module")
def failing(site, tmp_path_factory):
    """A stub service whose CNVKIT_SAMPLE tasks fail while a flag file `fail` exists, and
    take 30 s more while `slow` does."""
    folder = tmp_path_factory.mktemp("failing")
    flag = folder / "fail"
    config = folder / "fail.config"
    config.write_text("process { withName: 'CNVKIT_SAMPLE' { beforeScript = "
                      f"\"if [ -e '{flag}' ]; then echo '{PLANTED}' >&2; exit 3; fi; "
                      f"if [ -e '{folder / 'slow'}' ]; then sleep 30; fi\" }} }}\n")
    service = start(site, "failing-state", "--stub", "-c", str(config))
    yield service, flag
    assert service.stop() == 0


def test_a_failed_job_is_retried_through_the_api_reusing_its_finished_tasks(site, failing):
    service, flag = failing
    flag.touch()
    instance_id = submit(service, request_for(site, "retried"))
    failed = wait_for(service, instance_id, {"FINISHED", "FAILED", "CANCELLED"})
    assert failed["status"] == "FAILED", failed
    assert PLANTED in failed["message"]

    status, log = service.call("GET", f"{JOBS.format('lab-a')}/{instance_id}/log", ALICE)
    assert status == 200, log
    assert log["instance_id"] == instance_id and log["status"] == "FAILED"
    assert log["failure"].startswith("ERROR ~ Error executing process > 'CNVKIT:CNVKIT_SAMPLE")
    assert "Command exit status:\n  3" in log["failure"] and PLANTED in log["failure"]
    assert log["failed_tasks"] and all("CNVKIT_SAMPLE" in task["name"] and task["exit"] == "3"
                                       and PLANTED in task["stderr"]
                                       for task in log["failed_tasks"])
    assert "Submitted process > CNVKIT:CNVKIT_PREPARE" in log["log"]
    assert log["log_truncated"] is False

    flag.unlink()
    status, answer = service.call("POST", f"{JOBS.format('lab-a')}/{instance_id}/retry", ALICE)
    assert (status, answer) == (200, {"instance_id": instance_id, "status": "LAUNCHING"})
    done = wait_for(service, instance_id, {"FINISHED", "FAILED", "CANCELLED"})
    assert done["status"] == "FINISHED", done
    assert done["message"] is None
    trace = service.state_dir / "runs" / instance_id / "results" / "pipeline_info" / "trace.tsv"
    with open(trace, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    cached = {row["process"] for row in rows if row["status"] == "CACHED"}
    assert {"CNVKIT:CNVKIT_PREPARE", "CNVKIT:COVERAGE:CNVKIT_COVERAGE"} <= cached, rows
    assert {row["process"] for row in rows if row["status"] == "COMPLETED"} >= \
        {"CNVKIT:CNVKIT_SAMPLE"}, rows

    status, again = service.call("POST", f"{JOBS.format('lab-a')}/{instance_id}/retry", ALICE)
    assert status == 400 and again["error_code"] == "DLI.0007", again
    assert "FINISHED" in again["error_msg"]
    server = ["--server", service.url, "--project", "lab-a", "--token", ALICE]
    shown = launch(["log", *server, instance_id], service.state_dir)
    assert shown.returncode == 0 and "Submitted process > CNVKIT:CNVKIT_SAMPLE" in shown.stdout
    refused = launch(["retry", *server, instance_id], service.state_dir)
    assert refused.returncode == 1 and "DLI.0007" in refused.stderr, refused.stderr


def test_a_job_log_and_retry_are_its_own_projects_only(site, failing):
    service, _ = failing
    instance_id = submit(service, request_for(site, "own-only"))
    wait_for(service, instance_id, {"FINISHED", "FAILED", "CANCELLED"})
    missing = str(uuid.uuid4())
    for action, method in (("log", "GET"), ("retry", "POST")):
        answers = {(status, json.dumps(body, sort_keys=True)) for status, body in (
            service.call(method, f"{JOBS.format(project)}/{job}/{action}", token)
            for project, token in (("lab-b", BOB), ("lab-b", ALICE))
            for job in (instance_id, missing))}
        assert len(answers) == 1 and next(iter(answers))[0] == 404, answers
    status, body = service.call("GET", f"{JOBS.format('lab-a')}/{instance_id}/log")
    assert status == 401, body
    status, body = service.call("PUT", f"{JOBS.format('lab-a')}/{instance_id}/retry", ALICE)
    assert status == 405, body


def test_jobs_never_publish_into_the_same_folder_at_once(site, failing):
    service, _ = failing
    first = submit(service, request_for(site, "shared-out"))
    same = request_for(site, "shared-out")
    inner = {**same, "output_dir": same["output_dir"].rstrip("/") + "/inner/"}
    for request in (same, inner):
        status, body = service.call("POST", JOBS.format("lab-a"), ALICE, request)
        assert status == 400 and body["error_code"] == "DLI.0001", body
        assert [p["field"] for p in body["problems"]] == ["output_dir"], body
        assert f"job {first} (" in body["problems"][0]["message"], body
    beside = request_for(site, "shared-out-2")  # a name that merely starts alike
    second = submit(service, beside)
    assert wait_for(service, first, {"FINISHED", "FAILED"})["status"] == "FINISHED"
    third = submit(service, same)  # the folder is free again
    for instance_id in (second, third):
        assert wait_for(service, instance_id, {"FINISHED", "FAILED"})["status"] == "FINISHED"


def test_a_clean_beside_the_running_service_keeps_what_its_jobs_need(site, failing):
    service, flag = failing
    ended = submit(service, request_for(site, "cleaned-away"))
    wait_for(service, ended, {"FINISHED"})
    slow = flag.with_name("slow")
    slow.touch()
    running = submit(service, request_for(site, "kept-running"))
    wait_for(service, running, {"RUNNING"})
    slow.unlink()  # the task under way still sleeps
    cleaned = launch(["clean", "--max-age", "0s", "--json"], service.state_dir)
    assert cleaned.returncode == 0, cleaned.stderr
    report = json.loads(cleaned.stdout)
    assert ended in report["forgotten"] and running not in report["forgotten"], report
    assert not (service.state_dir / "runs" / ended).exists()
    assert f"runs/{running}" in {item["path"] for item in report["kept"]}, report
    assert wait_for(service, running, {"FINISHED", "FAILED"})["status"] == "FINISHED"
    status, gone = service.call("GET", f"{JOBS.format('lab-a')}?instance-id={ended}", ALICE)
    assert (status, gone["error_code"]) == (404, "DLI.0023"), gone


# --- projects kept apart in a writable shared root ---------------------------------------------

@pytest.fixture(scope="module")
def shared_results(site):
    """A stub service whose data roots add a writable shared root, results/; lab-b has its own
    links to the cohort."""
    base, theirs = site["base"], site["data"] / "lab-b" / "cohort"
    shutil.copytree(site["cohort"].ref.parent, theirs, copy_function=os.link)
    (base / "results").mkdir()
    settings = json.loads(site["config"].read_text())
    settings["data_roots"].append({"path": str(base / "results"), "writable": True})
    config = base / "shared-results.json"
    config.write_text(json.dumps(settings))
    (base / "shared-results-state").mkdir()
    service = LocalService(base / "shared-results-state", config, "--stub").start()
    yield service, base / "results", theirs
    assert service.stop() == 0


def bobs_job_ends(service: LocalService, instance_id: str) -> dict:
    """Poll lab-b's job (with bob's token) until it has ended."""
    deadline = time.monotonic() + 400
    while (current := job(service, instance_id, BOB, "lab-b"))["status"] not in \
            {"FINISHED", "FAILED", "CANCELLED"}:
        assert time.monotonic() < deadline, current
        time.sleep(0.5)
    return current


def refused_output(service: LocalService, request: dict, token: str, project: str) -> str:
    """The one problem of a request refused on its output_dir (or inputs): its message."""
    status, body = service.call("POST", JOBS.format(project), token, request)
    assert status == 400 and body["error_code"] == "DLI.0001", body
    assert len(body["problems"]) == 1, body
    return f"{body['problems'][0]['field']}: {body['problems'][0]['message']}"


def test_a_writable_shared_root_keeps_projects_apart(site, shared_results):
    """Each project reads and writes only its own folder of results/ (made at start): lab-b
    can neither write into lab-a's (nor the shared part), nor read lab-a's results there;
    each project's jobs publish into their own."""
    service, results, theirs = shared_results
    assert sorted(p.name for p in results.iterdir()) == ["lab-a", "lab-b"]
    first = submit(service, {**request_for(site, "x"), "output_dir": f"{results}/lab-a/run/"})
    bobs = demo_request(theirs, results / "lab-b" / "run")
    for output_dir in (results / "lab-a" / "run", results / "lab-a" / "run" / "inner",
                       results / "run"):
        message = refused_output(service, {**bobs, "output_dir": str(output_dir)}, BOB, "lab-b")
        assert message == (f"output_dir: {output_dir}: is outside the data roots; local paths "
                           "must be inside the writable data roots of project lab-b: "
                           f"{site['data']}/lab-b, {results}/lab-b"), message
    assert wait_for(service, first, {"FINISHED", "FAILED"})["status"] == "FINISHED"
    assert manifest.verify(results / "lab-a" / "run") == []
    published = results / "lab-a" / "run" / "manifest.json"
    message = refused_output(service, {**bobs, "bed": str(published)}, BOB, "lab-b")
    assert message.startswith(f"bed: {published}: is outside the data roots"), message
    second = submit(service, bobs, BOB, "lab-b")
    assert bobs_job_ends(service, second)["status"] == "FINISHED"
    assert manifest.verify(results / "lab-b" / "run") == []


def test_a_job_of_another_project_never_blocks_a_folder(site, shared_results):
    """A lab-a job recorded with a destination in lab-b's folder, as a folder swapped for a link
    once let one be, neither refuses lab-b's job there nor shows in lab-b's answers; and lab-a's
    link into lab-b's folder is refused when it is claimed."""
    service, _, theirs = shared_results
    wanted = site["data"] / "lab-b" / "out" / "claimed"
    store = JobStore(service.state_dir / "jobs.sqlite")  # its workers run only what it queued
    planted = store.create(request_for(site, "planted"), project="lab-a", owner="alice",
                           runner="service", destination=f"{wanted}/")
    try:
        status, body = service.call("POST", JOBS.format("lab-b"), BOB,
                                    demo_request(theirs, wanted))
        assert status == 201, body
        assert bobs_job_ends(service, body["instance_id"])["status"] == "FINISHED"
    finally:
        store.withdraw(planted.instance_id)
    (site["data"] / "lab-a" / "to-b").symlink_to(wanted.parent, target_is_directory=True)
    message = refused_output(service, {**request_for(site, "x"),
                                       "output_dir": str(site["data"] / "lab-a" / "to-b" / "y")},
                             ALICE, "lab-a")
    assert message.startswith("output_dir: ") and "is a symbolic link (or inside one) that " \
        "leads outside the data roots" in message, message
