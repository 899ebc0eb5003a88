"""The job service over real HTTP on 127.0.0.1, running jobs with the real `nextflow`."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from cnvkit_nf.launch.runner import run_alive
from cnvkit_nf.state.jobs import JobStore
from cnvkit_nf.storage import manifest
from scaffold.local_service import ROOT, LocalService
from scaffold.simulate import seed_like_cohort
from tests.conftest import CHROM, seed_request
from tests.pipeline.test_pipeline_e2e import called_copies

pytestmark = pytest.mark.e2e

ALICE, BOB = "alice-token-0123456789", "bob-token-0123456789ab"
JOBS = "/v2.0/{}/gene/tools/cnvkit"
LIMITS = {"max_inputs": 6, "max_option_length": 300, "max_body_bytes": 64 * 1024}


@pytest.fixture(scope="module")
def site(tmp_path_factory, nextflow_bin) -> dict:
    """Data roots per project (/data/{project}), the seed-like cohort in lab-a's, a config."""
    base = tmp_path_factory.mktemp("site")
    for project in ("lab-a", "lab-b"):
        (base / "data" / project).mkdir(parents=True)
    (base / "shared").mkdir()
    cohort = seed_like_cohort(base / "data" / "lab-a" / "cohort", reads_per_sample=150_000,
                              seed=5, chrom_length=CHROM)
    config = base / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": ALICE, "owner": "alice", "projects": ["lab-a"]},
                   {"token_sha256": hashlib.sha256(BOB.encode()).hexdigest(),
                    "owner": "bob", "projects": ["lab-b"]}],
        "data_roots": [str(base / "data" / "{project}"), str(base / "shared")],  # shared: read
        "limits": LIMITS,
    }))
    return {"base": base, "cohort": cohort, "config": config, "data": base / "data",
            "shared": base / "shared"}


def start(site: dict, name: str, *args: str) -> LocalService:
    state = site["base"] / name
    state.mkdir(exist_ok=True)
    return LocalService(state, site["config"], *args).start()


@pytest.fixture(scope="module")
def stub_service(site):
    """A service that runs jobs with -stub-run (seconds each): for wiring and API tests."""
    service = start(site, "stub-state", "--stub")
    yield service
    assert service.stop() == 0


def request_for(site: dict, name: str, **changes) -> dict:
    out = site["data"] / "lab-a" / "out" / name
    return seed_request(site["cohort"], out, **changes)


def job(service: LocalService, instance_id: str, token: str = ALICE,
        project: str = "lab-a") -> dict:
    status, body = service.call("GET", f"{JOBS.format(project)}?instance-id={instance_id}", token)
    assert status == 200, body
    assert body["count"] == 1
    return body["instances"][0]


def wait_for(service: LocalService, instance_id: str, states: set[str],
             timeout: float = 400, seen: list | None = None) -> dict:
    """Poll the query API until the job is in one of `states`; `seen` collects
    (seconds the call took, instance) for every poll."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asked = time.monotonic()
        current = job(service, instance_id)
        if seen is not None:
            seen.append((time.monotonic() - asked, current))
        if current["status"] in states:
            return current
        time.sleep(0.5)
    raise AssertionError(f"{instance_id} did not reach {states}: {current}")


def submit(service: LocalService, request: dict, token: str = ALICE,
           project: str = "lab-a") -> str:
    status, body = service.call("POST", JOBS.format(project), token, request)
    assert status == 201, body
    return body["instance_id"]


# --- a real job, start to end ---------------------------------------------------------------

@pytest.fixture(scope="module")
def seed_job(site) -> dict:
    """The seed-shaped request run by a real service ("seed-state", which keeps its
    reference), followed by its query API to the end."""
    service = start(site, "seed-state")
    try:
        request = request_for(site, "seed")
        instance_id = submit(service, request)
        polls: list[tuple[float, dict]] = []
        final = wait_for(service, instance_id, {"FINISHED", "FAILED"}, seen=polls)
    finally:
        assert service.stop() == 0
    return {"request": request, "instance_id": instance_id, "polls": polls, "final": final}


def test_seed_request_runs_to_finished(site, seed_job):
    request, instance_id, polls, final = (seed_job[key] for key in
                                          ("request", "instance_id", "polls", "final"))
    assert len(instance_id) == 36 and instance_id.count("-") == 4
    assert final["status"] == "FINISHED", final["message"]
    seen = [entry for _, entry in polls]
    assert max(took for took, _ in polls) < 2  # answers never wait on the running job
    total = int(final["progress"].split("/")[1])
    # the total is known once the workflow has started and written it, and never changes
    assert seen[0]["progress"] in ("0/0", f"0/{total}") and final["progress"] == f"{total}/{total}"
    assert {entry["progress"].split("/")[1] for entry in seen} <= {"0", str(total)}
    assert "RUNNING" in {entry["status"] for entry in seen}
    durations = [entry["duration"] for entry in seen]
    assert durations == sorted(durations) and durations[-1] > durations[0]
    out = Path(request["output_dir"])
    # a finished job has no message (the family keeps it for failures); its warnings say only
    # what its bin sizes warn of (the seed's -a 100000 leaves few antitarget bins between the
    # cohort's dense targets), as its results say
    warned = json.loads((out / "reference" / "bin_sizes.json").read_text())["warnings"]
    assert final["owner"] == "alice" and final["message"] is None
    assert final["warnings"] == warned
    assert {key: final[key] for key in request} == request  # every request field echoed
    assert manifest.verify(out) == []
    umask = os.umask(0)
    os.umask(umask)  # the service's, which it inherited: results are as readable as it allows
    assert {p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()} == {0o666 & ~umask}
    son = next(spec for spec in site["cohort"].samples if spec.name == "Son_S2_ALL")
    calls = out / "samples" / "Son_S2_ALL" / "Son_S2_ALL.call.cns"
    for event in son.events:
        assert called_copies(calls, event.chrom, event.start, event.end) == {event.copies}


def test_a_samplesheet_job_runs_and_reuses_the_seeds_reference(site, seed_job):
    """A samplesheet in the project's root with the seed cohort's BAMs and the tumour's
    sex and purity: the service reads it, reuses the reference the seed job kept (the same
    controls, none with a given sex) and calls the tumour with its facts."""
    cohort = site["cohort"]
    sheet = site["data"] / "lab-a" / "seed-sheet.csv"
    bams = cohort.bams
    sheet.write_text("sample,bam,role,sex,purity\n"
                     f"Son_S2_ALL,{bams['Son_S2_ALL']},experimental,male,0.8\n"
                     f",{bams['Father_S5_ALL']},control,,\n"
                     f",{bams['Mather_S1_ALL']},control,,\n")
    request = {k: v for k, v in request_for(site, "sheet").items() if not k.endswith("_inputs")}
    service = start(site, "seed-state")
    try:
        instance_id = submit(service, {**request, "samplesheet": str(sheet)})
        final = wait_for(service, instance_id, {"FINISHED", "FAILED"})
    finally:
        assert service.stop() == 0
    assert final["status"] == "FINISHED", final["message"]
    assert final["message"] is None and final["warnings"][0].startswith("reference reused")
    out = Path(request["output_dir"])
    assert manifest.verify(out) == []
    assert not (out / "coverage" / "Father_S5_ALL.targetcoverage.cnn").exists()
    assert "0.8 (given for the sample)" in (out / "report.html").read_text()
    # the call is CNVkit's by hand with call_conf and then the sample's facts
    folder = out / "samples" / "Son_S2_ALL"
    hand = site["base"] / "sheet-hand.call.cns"
    subprocess.run([str(Path(sys.executable).parent / "cnvkit.py"), "call",
                    str(folder / "Son_S2_ALL.segmetrics.cns"), *shlex.split(request["call_conf"]),
                    "-x", "male", "--purity", "0.8", "-o", str(hand)], check=True)
    assert (folder / "Son_S2_ALL.call.cns").read_text() == hand.read_text()


# --- bad requests ------------------------------------------------------------------------------

def _malformed(site: dict) -> list[tuple[str, str, str, str | None, object, int, str, str]]:
    """(name, method, path, token, body, status, error_code, text the error must contain)."""
    good = request_for(site, "never")
    lab_a, data = JOBS.format("lab-a"), site["data"]
    link = data / "lab-a" / "escape.bam"
    if not link.is_symlink():
        link.symlink_to("/etc/hostname")
    fifo = data / "lab-a" / "pipe.bed"
    if not fifo.exists():
        os.mkfifo(fifo)
    no_ref = {k: v for k, v in good.items() if k != "ref"}
    return [
        ("wrong type", "POST", lab_a, ALICE, {**good, "experimental_inputs": "x.bam"}, 400,
         "DLI.0001", "experimental_inputs"),
        ("missing field", "POST", lab_a, ALICE, no_ref, 400, "DLI.0001", "ref"),
        ("unknown field", "POST", lab_a, ALICE, {**good, "expermental_inputs": []}, 400,
         "DLI.0001", "did you mean 'experimental_inputs'"),
        ("command substitution", "POST", lab_a, ALICE, {**good, "coverage_conf": "$(id)"},
         400, "DLI.0001", "coverage_conf"),
        ("shell separator", "POST", lab_a, ALICE, {**good, "fix_conf": "--no-gc; rm -rf /"},
         400, "DLI.0001", "fix_conf"),
        ("managed output", "POST", lab_a, ALICE, {**good, "call_conf": "--outp=/tmp/x"}, 400,
         "DLI.0001", "call_conf"),
        ("bundled short flags", "POST", lab_a, ALICE, {**good, "reference_conf": "-yo/x"},
         400, "DLI.0001", "reference_conf"),
        ("rscript path", "POST", lab_a, ALICE,
         {**good, "segment_conf": "--rscript-path /bin/sh"}, 400, "DLI.0001", "segment_conf"),
        ("path traversal", "POST", lab_a, ALICE,
         {**good, "bed": str(data / "lab-a" / ".." / "lab-b" / "x.bed")}, 400, "DLI.0001",
         "'..' is not allowed"),
        ("outside the roots", "POST", lab_a, ALICE, {**good, "ref": "/etc/hosts.fa"}, 400,
         "DLI.0001", "outside the data roots"),
        ("another project's root", "POST", lab_a, ALICE,
         {**good, "output_dir": str(data / "lab-b" / "out")}, 400, "DLI.0001",
         "outside the data roots"),
        ("symlink out of the root", "POST", lab_a, ALICE,
         {**good, "control_inputs": [str(link)]}, 400, "DLI.0001", "symbolic link"),
        ("relative path", "POST", lab_a, ALICE, {**good, "bed": "cohort/targets.bed"}, 400,
         "DLI.0001", "not an absolute path"),
        ("oversized body", "POST", lab_a, ALICE, {**good, "fix_conf": "x" * 70_000}, 400,
         "DLI.0009", "at most 65536"),
        ("invalid JSON", "POST", lab_a, ALICE, b'{"bed": ', 400, "DLI.0001", "invalid JSON"),
        ("not an object", "POST", lab_a, ALICE, [good], 400, "DLI.0001", "object"),
        ("repeated key", "POST", lab_a, ALICE,
         b'{"bed": "/a.bed", "bed": "/b.bed"}', 400, "DLI.0001", "bed"),
        ("not UTF-8", "POST", lab_a, ALICE, b'{"bed": "\xff"}', 400, "DLI.0001", "UTF-8"),
        ("too many inputs", "POST", lab_a, ALICE,
         {**good, "control_inputs": good["control_inputs"] * 3}, 400, "DLI.0001",
         "at most 6"),
        ("option too long", "POST", lab_a, ALICE, {**good, "fix_conf": "--no-gc " * 40},
         400, "DLI.0001", "at most 300"),
        ("annotation missing", "POST", lab_a, ALICE,
         {**{k: v for k, v in good.items() if k != "annotation_file"}, "has_annotate": True},
         400, "DLI.0001",
         "annotation_file"),
        ("missing BAM", "POST", lab_a, ALICE,
         {**good, "control_inputs": [str(data / "lab-a" / "Nobody_S9.bam")]}, 400, "DLI.0001",
         "Nobody_S9.bam"),
        ("limit 0", "GET", lab_a + "?limit=0", ALICE, None, 400, "DLI.0001", "limit"),
        ("limit 101", "GET", lab_a + "?limit=101", ALICE, None, 400, "DLI.0001", "limit"),
        ("negative offset", "GET", lab_a + "?offset=-1", ALICE, None, 400, "DLI.0001", "offset"),
        ("start not a number", "GET", lab_a + "?start=yesterday", ALICE, None, 400, "DLI.0001",
         "start"),
        ("unknown query parameter", "GET", lab_a + "?instance_id=x", ALICE, None, 400,
         "DLI.0001", "instance_id: unknown query parameter"),
        ("no token", "POST", lab_a, None, good, 401, "DLI.0013", "X-Auth-Token"),
        ("wrong token", "GET", lab_a, "not-a-token-at-all", None, 401, "DLI.0013", "X-Auth-Token"),
        ("another project", "GET", JOBS.format("lab-b"), ALICE, None, 404, "DLI.0023",
         "not found"),
        ("unknown job", "DELETE", lab_a + "/0b8d2a9e-0000-4000-8000-000000000000", ALICE, None,
         404, "DLI.0023", "not found"),
        ("unknown route", "GET", "/v1.0/lab-a/gene/tools/cnvkit", ALICE, None, 404,
         "DLI.0023", "not found"),
        ("wrong method", "PUT", lab_a, ALICE, good, 405, "DLI.0007", "not supported"),
        ("Nextflow expansion in a path", "POST", lab_a, ALICE,
         {**good, "bed": str(data / "lab-a" / "${projectDir}" / "t.bed")}, 400, "DLI.0001",
         "bed: path contains $ { }: Nextflow would expand"),
        ("glob in a path", "POST", lab_a, ALICE,
         {**good, "control_inputs": [str(data / "lab-*" / "Father_S5_ALL.bam")]}, 400,
         "DLI.0001", "control_inputs[0]: path contains *: Nextflow would expand ${...} or read "
         "the path as a file pattern"),
        ("output into a shared root", "POST", lab_a, ALICE,
         {**good, "output_dir": str(site["shared"] / "out")}, 400, "DLI.0001",
         "is in a data root that is read-only for project lab-a"),
        ("deeply nested JSON", "POST", lab_a, ALICE, b"[" * 5000 + b"]" * 5000, 400,
         "DLI.0001", "nested more than 32 levels deep"),
        ("objects nested 10,000 deep", "POST", lab_a, ALICE,
         b'{"a":' * 10_000 + b"1" + b"}" * 10_000, 400, "DLI.0001",
         "nested more than 32 levels deep"),
        ("10,000 unclosed brackets", "POST", lab_a, ALICE, b"[" * 10_000, 400, "DLI.0001",
         "nested more than 32 levels deep"),
        ("a JSON number", "POST", lab_a, ALICE, b"42", 400, "DLI.0001",
         "expected object, got integer"),
        ("a JSON string", "POST", lab_a, ALICE, b'"{}"', 400, "DLI.0001",
         "expected object, got string"),
        ("JSON null", "POST", lab_a, ALICE, b"null", 400, "DLI.0001", "expected object, got null"),
        ("an empty body", "POST", lab_a, ALICE, b"", 400, "DLI.0001", "invalid JSON"),
        ("a huge integer", "POST", lab_a, ALICE,
         json.dumps({**good, "bed": 0}).replace('"bed": 0', '"bed": ' + "9" * 5000).encode(),
         400, "DLI.0001", "a number of 5000 digits"),
        ("a number beyond a double", "POST", lab_a, ALICE,
         json.dumps({**good, "bed": 0}).replace('"bed": 0', '"bed": 1e999999').encode(), 400,
         "DLI.0001", "bed: expected string"),
        ("NaN", "POST", lab_a, ALICE,
         json.dumps({**good, "bed": 0}).replace('"bed": 0', '"bed": NaN').encode(), 400,
         "DLI.0001", "bed: expected string"),
        ("a body just over the limit", "POST", lab_a, ALICE, b" " * (64 * 1024 + 1), 400,
         "DLI.0009", "at most 65536"),
        ("lone surrogate in a path", "POST", lab_a, ALICE,
         {**good, "bed": good["bed"] + "\ud800"}, 400, "DLI.0001", "lone surrogate"),
        ("processes beyond a 32-bit integer", "POST", lab_a, ALICE,
         {**good, "coverage_conf": "-p 2147483648"}, 400, "DLI.0001",
         "-p/--processes must be at most 1024, got 2147483648"),
        ("a FIFO as input", "POST", lab_a, ALICE, {**good, "bed": str(fifo)}, 400, "DLI.0001",
         "is not a regular file"),
    ]


def test_malformed_requests_get_clear_errors_and_nothing_runs(site, stub_service):
    cases = _malformed(site)
    assert len(cases) >= 25
    failures = []
    for name, method, path, token, body, status, code, text in cases:
        got, answer = stub_service.call(method, path, token, body)
        if (got, answer.get("error_code")) != (status, code) or text not in answer["error_msg"]:
            failures.append((name, got, answer))
    assert not failures, "\n".join(map(str, failures))
    assert stub_service.call("GET", "/health")[1]["status"] == "ok"
    status, listing = stub_service.call("GET", JOBS.format("lab-a"), ALICE)
    assert (status, listing["count"]) == (200, 0)
    assert not (site["data"] / "lab-a" / "out" / "never").exists()


def test_every_problem_is_reported_at_once(site, stub_service):
    bad = {**request_for(site, "never"), "coverage_conf": "$(id)", "bed": "../x.bed",
           "has_annotate": "yes"}
    status, answer = stub_service.call("POST", JOBS.format("lab-a"), ALICE, bad)
    assert status == 400 and answer["error_code"] == "DLI.0001"
    assert {"coverage_conf", "bed", "has_annotate"} <= {p["field"] for p in answer["problems"]}


# --- auth --------------------------------------------------------------------------------------

def answer_bytes(service: LocalService, method: str, path: str, token: str) -> tuple[int, bytes]:
    """One HTTP request: its status and body as sent."""
    address = urlsplit(service.url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
    try:
        connection.request(method, path, headers={"X-Auth-Token": token})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def bob_learns_nothing_of(service: LocalService, instance_id: str) -> None:
    """Bob's token (lab-b) learns nothing of Alice's job (lab-a): every call on its id answers
    byte for byte as on ids no job has (the id itself aside), on the seed API and WES."""
    nobody = [str(uuid.uuid4()), "not-a-job"]
    calls = [(method, JOBS.format(project) + path)
             for project in ("lab-b", "lab-a")  # bob's project, and hers
             for method, path in (("GET", "?instance-id={id}"), ("DELETE", "/{id}"),
                                  ("PUT", "/{id}"), ("POST", "/{id}/retry"),
                                  ("GET", "/{id}/log"))]
    calls += [("GET", "/ga4gh/wes/v1/runs/{id}"), ("GET", "/ga4gh/wes/v1/runs/{id}/status"),
              ("POST", "/ga4gh/wes/v1/runs/{id}/cancel"), ("DELETE", "/ga4gh/wes/v1/runs/{id}")]

    def answers(job_id: str) -> list[tuple[int, bytes]]:
        return [(status, body.replace(job_id.encode(), b"ID")) for status, body in
                (answer_bytes(service, method, path.format(id=job_id), BOB)
                 for method, path in calls)]

    theirs = answers(instance_id)
    # not found, but for PUT in bob's own project: a method no job path takes
    assert [status for status, _ in theirs] == [404, 404, 405] + [404] * 11, theirs
    for other in nobody:
        assert answers(other) == theirs
    assert instance_id not in json.dumps(service.call("GET", JOBS.format("lab-b"), BOB)[1])
    assert instance_id not in json.dumps(service.call(
        "GET", "/ga4gh/wes/v1/runs?page_size=100", BOB)[1])


def test_projects_are_isolated(site, stub_service):
    instance_id = submit(stub_service, request_for(site, "alice-1"))
    mine = job(stub_service, instance_id)
    assert mine["owner"] == "alice"
    lab_b = JOBS.format("lab-b")
    assert stub_service.call("GET", f"{lab_b}?instance-id={instance_id}", BOB)[0] == 404
    assert stub_service.call("DELETE", f"{lab_b}/{instance_id}", BOB)[1]["error_code"] == \
        "DLI.0023"
    assert stub_service.call("GET", lab_b, BOB)[1] == {"count": 0, "instances": []}
    assert stub_service.call("GET", f"{JOBS.format('lab-a')}?instance-id={instance_id}",
                             BOB)[0] == 404  # bob's token does not open lab-a
    cohort_bam = str(site["cohort"].bams["Son_S2_ALL"])  # lab-a's data, named by lab-b
    status, answer = stub_service.call("POST", lab_b, BOB, {
        **request_for(site, "bob"), "experimental_inputs": [cohort_bam],
        "output_dir": str(site["data"] / "lab-b" / "out")})
    assert status == 400 and "data roots of project lab-b" in answer["error_msg"]
    bob_learns_nothing_of(stub_service, instance_id)  # while it waits or runs
    assert wait_for(stub_service, instance_id, {"FINISHED", "FAILED", "CANCELLED"}
                    )["status"] == "FINISHED"  # bob's cancels did nothing
    bob_learns_nothing_of(stub_service, instance_id)  # once it has ended


# --- queue, cancel -----------------------------------------------------------------------------

def test_ten_jobs_at_once_run_one_at_a_time_in_order(site, stub_service):
    requests = [request_for(site, f"queue-{i}") for i in range(10)]

    def submit_as_clients_do(request: dict) -> str:
        """Submit; a 429 (more submissions of the token under way than it may have) is sent
        again after its Retry-After."""
        while True:
            status, body = stub_service.call("POST", JOBS.format("lab-a"), ALICE, request)
            if status != 429:
                assert status == 201, body
                return body["instance_id"]
            time.sleep(1)

    with ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(submit_as_clients_do, requests))
    statuses = [job(stub_service, i)["status"] for i in ids]
    assert statuses.count("RUNNING") <= 1
    for instance_id in ids:
        assert wait_for(stub_service, instance_id, {"FINISHED", "FAILED"})["status"] == "FINISHED"
    store = JobStore(stub_service.state_dir / "jobs.sqlite")
    with sqlite3.connect(store.path) as db:  # the order in which the service recorded them
        recorded = [row[0] for row in db.execute("SELECT instance_id FROM jobs ORDER BY rowid")]
    jobs = [store.get(i) for i in recorded if i in ids]
    started = [j.start_time for j in jobs]
    assert started == sorted(started)  # run in submission order
    for earlier, later in zip(jobs, jobs[1:], strict=False):
        assert later.start_time >= earlier.end_time  # never two at once
    assert all(j.attempts == 1 for j in jobs)


def test_a_thousand_queued_jobs_are_listed_by_page_in_under_a_second(site):
    """1,000 waiting jobs (recorded in the store of a running service, whose workers take only
    what it queued itself), paged 100 at a time on each face: every id once, and each full
    listing in under a second."""
    service = start(site, "paging-state", "--stub")
    try:
        store = JobStore(service.state_dir / "jobs.sqlite")
        request = request_for(site, "paged")
        ids = [store.create(request, project="lab-a", owner="alice", runner="service",
                            runs_in=service.state_dir / "runs").instance_id
               for _ in range(1000)]
        started = time.perf_counter()
        seed = []
        for offset in range(0, 1000, 100):
            status, page = service.call("GET", f"{JOBS.format('lab-a')}?limit=100&offset="
                                        f"{offset}", ALICE)
            assert (status, page["count"], len(page["instances"])) == (200, 1000, 100), page
            seed += page["instances"]
        seed_seconds = time.perf_counter() - started
        started, wes, token, pages = time.perf_counter(), [], "", 0
        while True:
            status, page = service.call("GET", "/ga4gh/wes/v1/runs?page_size=100"
                                        + (f"&page_token={token}" if token else ""), ALICE)
            assert status == 200, page
            wes += page["runs"]
            pages, token = pages + 1, page["next_page_token"]
            if not token:
                break
        wes_seconds = time.perf_counter() - started
    finally:
        assert service.stop() == 0
    assert [job["instance_id"] for job in seed] == ids[::-1]  # each once, newest first
    assert [run["run_id"] for run in wes] == ids[::-1] and pages == 10
    assert {job["status"] for job in seed} == {"LAUNCHING"}
    assert {run["state"] for run in wes} == {"QUEUED"}
    assert seed_seconds < 1 and wes_seconds < 1, (seed_seconds, wes_seconds)


def test_rules_are_checked_again_when_a_queued_job_starts(site, stub_service, tmp_path):
    first = submit(stub_service, request_for(site, "ahead"))
    swapped = request_for(site, "swapped")
    queued = submit(stub_service, swapped)
    Path(swapped["output_dir"]).parent.mkdir(parents=True, exist_ok=True)
    Path(swapped["output_dir"]).symlink_to(tmp_path, target_is_directory=True)
    final = wait_for(stub_service, queued, {"FAILED", "FINISHED"})
    assert final["status"] == "FAILED"
    assert final["message"].startswith("refused when its turn came: output_dir: ")
    assert "symbolic link" in final["message"]
    assert list(tmp_path.iterdir()) == []
    assert wait_for(stub_service, first, {"FAILED", "FINISHED"})["status"] == "FINISHED"


def test_cancel_queued_and_running_jobs(site):
    service = start(site, "cancel-state")
    try:
        first = submit(service, request_for(site, "cancel-running"))
        queued = submit(service, request_for(site, "cancel-queued"))
        assert service.call("DELETE", f"{JOBS.format('lab-a')}/{queued}", ALICE) == (200, {})
        assert job(service, queued)["status"] == "CANCELLED"
        wait_for(service, first, {"RUNNING"})
        deadline = time.monotonic() + 120
        while int(job(service, first)["progress"].split("/")[0]) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.5)
        store = JobStore(service.state_dir / "jobs.sqlite")
        record = store.get(first)
        # at the family's path for its gene jobs (RELATED_APIS.md), as at the cnvkit one's
        assert service.call("DELETE", f"/v2.0/lab-a/gene/jobs/{first}", ALICE) == (200, {})
        assert job(service, first)["status"] in ("CANCELING", "CANCELLED")
        others = service.call("DELETE", f"/v2.0/lab-b/gene/jobs/{first}", BOB)
        assert (others[0], others[1]["error_code"]) == (404, "DLI.0023")
        twice = service.call("DELETE", f"{JOBS.format('lab-a')}/{first}", ALICE)
        assert (twice[0], twice[1]["error_code"]) == (400, "DLI.0007")  # already cancelling
        final = wait_for(service, first, {"CANCELLED", "FINISHED", "FAILED"}, timeout=120)
        status, again = service.call("DELETE", f"{JOBS.format('lab-a')}/{first}", ALICE)
    finally:
        assert service.stop() == 0
    assert final["status"] == "CANCELLED" and final["message"] is None  # not a failure
    assert final["warnings"] == ["cancelled on request"]
    assert (status, again["error_code"]) == (400, "DLI.0007")
    assert not run_alive(record)
    assert not _group_alive(record.pid)
    assert not (Path(request_for(site, "cancel-running")["output_dir"]) / "manifest.json").exists()
    assert not (Path(store.get(queued).run_dir) / "params.json").exists()  # never started


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (a zombie, dead and waiting for its parent,
    or for init once orphaned, to collect its status, does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


# --- restart safety ----------------------------------------------------------------------------

def _kill_mid_run(site: dict, name: str) -> tuple[LocalService, str, JobStore]:
    service = start(site, name)
    instance_id = submit(service, request_for(site, name))
    deadline = time.monotonic() + 180
    while int(job(service, instance_id)["progress"].split("/")[0]) < 3:
        assert time.monotonic() < deadline, job(service, instance_id)
        time.sleep(0.3)
    service.kill()
    return service, instance_id, JobStore(service.state_dir / "jobs.sqlite")


def _restart_until_done(service: LocalService, instance_id: str, store: JobStore):
    """Start the killed service again on its state dir; the job's final instance and record."""
    service.start()
    try:
        final = wait_for(service, instance_id, {"FINISHED", "FAILED", "CANCELLED"})
    finally:
        assert service.stop() == 0
    assert final["status"] == "FINISHED", final["message"]
    return final, store.get(instance_id)


def test_kill9_then_restart_follows_the_running_nextflow(site):
    service, instance_id, store = _kill_mid_run(site, "reattach")
    record = store.get(instance_id)
    assert record.status == "RUNNING"
    assert run_alive(record)  # Nextflow goes on
    final, record = _restart_until_done(service, instance_id, store)
    assert record.attempts == 1 and record.pid  # one Nextflow run, followed to its end
    history = (Path(record.run_dir) / ".nextflow" / "history").read_text().splitlines()
    assert len(history) == 1
    out = Path(record.request["output_dir"])
    assert manifest.verify(out) == []
    total = int(final["progress"].split("/")[1])
    assert final["progress"] == f"{total}/{total}"


def test_kill9_of_service_and_nextflow_then_restart_resumes(site):
    service, instance_id, store = _kill_mid_run(site, "resume")
    record = store.get(instance_id)
    os.killpg(record.pid, signal.SIGKILL)  # as if the machine had gone down
    deadline = time.monotonic() + 30
    while _group_alive(record.pid):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    final, record = _restart_until_done(service, instance_id, store)
    assert record.attempts == 2
    run_dir = Path(record.run_dir)
    assert len((run_dir / ".nextflow" / "history").read_text().splitlines()) == 2
    out = Path(record.request["output_dir"])
    trace = (out / "pipeline_info" / "trace.tsv").read_text()
    assert "\tCACHED\t" in trace  # the second run reused the first run's finished tasks
    assert manifest.verify(out) == []
    names = [entry["path"] for entry in json.loads((out / "manifest.json").read_text())["files"]]
    assert len(names) == len(set(names))


def test_one_service_per_state_dir(site, stub_service):
    second = LocalService(stub_service.state_dir, site["config"])
    with pytest.raises(RuntimeError, match="did not start"):
        second.start()
    assert "another cnvkit-nf serve uses" in stub_service.log.read_text()


# --- the API document and the CLI client ------------------------------------------------------

def test_openapi_document_is_served(stub_service):
    status, served = stub_service.call("GET", "/openapi.json")
    assert status == 200
    assert served == json.loads((ROOT / "schema" / "openapi.json").read_text())


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "bin" / "cnvkit-nf"), *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})})


def test_cli_submit_and_status_talk_to_the_service(site, stub_service, tmp_path):
    request = tmp_path / "request.json"
    request.write_text(json.dumps(request_for(site, "cli")))
    server = ["--server", stub_service.url, "--project", "lab-a"]
    submitted = cli("submit", str(request), *server, env={"CNVKIT_NF_TOKEN": ALICE})
    assert submitted.returncode == 0, submitted.stderr
    instance_id = submitted.stdout.split(": ", 1)[1].strip()
    wait_for(stub_service, instance_id, {"FINISHED"})
    status = cli("status", instance_id, "--json", *server, "--token", ALICE)
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert list(body) == ["instance_id", "status", "progress", "start_time", "duration",
                          "message", "warnings"]
    assert body["status"] == "FINISHED" and body["instance_id"] == instance_id
    request.write_text(json.dumps({**request_for(site, "cli"), "fix_conf": "$(id)"}))
    bad = cli("submit", str(request), *server, "--token", ALICE)
    assert bad.returncode == 1 and "fix_conf: forbidden character" in bad.stderr
    unknown = cli("status", instance_id, *server, "--token", BOB)
    assert unknown.returncode == 1 and "DLI.0023" in unknown.stderr
    wrong = cli("cancel", instance_id, *server, "--token", ALICE)
    assert wrong.returncode == 1 and "DLI.0007" in wrong.stderr


def test_jobs_that_cannot_go_on_after_a_restart_fail_with_the_reason(site):
    state = site["base"] / "left-state"
    store = JobStore(state / "jobs.sqlite")
    runs = state / "runs"
    worn = store.create(request_for(site, "worn"), project="lab-a", owner="alice",
                        runner="service", runs_in=runs)
    Path(worn.run_dir).mkdir(parents=True)
    Path(worn.run_dir, "params.json").write_text("{}")
    store.start(worn.instance_id, pid=2**22 + 1, attempts=3)
    gone_bam = site["data"] / "lab-a" / "Gone_S1.bam"
    gone_bam.write_bytes(b"")
    orphan = store.create(request_for(site, "gone", control_inputs=[str(gone_bam)]),
                          project="lab-a", owner="alice", runner="service", runs_in=runs)
    gone_bam.unlink()
    service = start(site, "left-state", "--stub")
    try:
        worn_final = wait_for(service, worn.instance_id, {"FAILED", "FINISHED"}, timeout=60)
        orphan_final = wait_for(service, orphan.instance_id, {"FAILED", "FINISHED"}, timeout=60)
    finally:
        assert service.stop() == 0
    assert worn_final["message"] == "its run was interrupted 3 times; not resumed again"
    assert orphan_final["status"] == "FAILED"
    assert orphan_final["message"].startswith("refused when its turn came: ")  # a queued one
    assert "Gone_S1.bam" in orphan_final["message"]


# --- what was checked is what is read and written ----------------------------------------------

def _hard_link_tree(source: Path, dest: Path, names: dict[str, str]) -> None:
    """Files of `source` linked into `dest` under new names ({old: new})."""
    dest.mkdir(parents=True)
    for old, new in names.items():
        os.link(source / old, dest / new)


def test_paths_swapped_while_jobs_run_change_nothing(site):
    """Two real jobs run while their folders are replaced by links into lab-b: one has its
    tumour's folder swapped, the other its output folder. The first computes on the BAM that
    was checked; the second publishes nothing, and lab-b is never written."""
    cohort, lab_a, lab_b = site["cohort"], site["data"] / "lab-a", site["data"] / "lab-b"
    son, father = "Son_S2_ALL.sort.mkdup.bam", "Father_S5_ALL.sort.mkdup.bam"
    tumour = lab_a / "swap" / "tumour"
    _hard_link_tree(cohort.ref.parent, tumour, {son: son, f"{son}.bai": f"{son}.bai"})
    decoy = lab_b / "decoy"  # lab-b's "Son": a BAM without the planted changes
    _hard_link_tree(cohort.ref.parent, decoy, {father: son, f"{father}.bai": f"{son}.bai"})
    victim = lab_b / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("lab-b's own\n")
    swapped_output = lab_a / "swap" / "out-2"
    swapped_output.mkdir()
    service = start(site, "swap-state", "--concurrency", "2")
    try:
        inputs_job = submit(service, request_for(site, "swap-in",
                                                 experimental_inputs=[str(tumour / son)]))
        output_job = submit(service, {**request_for(site, "x"),
                                      "output_dir": str(swapped_output)})
        for instance_id in (inputs_job, output_job):
            wait_for(service, instance_id, {"RUNNING"})
        tumour.rename(tumour.with_name("tumour.checked"))
        tumour.symlink_to(decoy, target_is_directory=True)
        swapped_output.rename(swapped_output.with_name("out-2.moved"))
        swapped_output.symlink_to(victim, target_is_directory=True)
        inputs_final = wait_for(service, inputs_job, {"FINISHED", "FAILED", "CANCELLED"})
        output_final = wait_for(service, output_job, {"FINISHED", "FAILED", "CANCELLED"})
    finally:
        assert service.stop() == 0
    store = JobStore(service.state_dir / "jobs.sqlite")
    private = service.state_dir / "inputs" / "entries"
    params = json.loads((Path(store.get(inputs_job).run_dir) / "params.json").read_text())
    for path in params["experimental_inputs"] + params["control_inputs"] + [params["ref"]]:
        assert Path(path).is_relative_to(private), path  # Nextflow reads only private paths
    checked = tumour.with_name("tumour.checked") / son
    assert os.stat(params["experimental_inputs"][0]).st_ino == os.stat(checked).st_ino
    assert inputs_final["status"] == "FINISHED", inputs_final["message"]
    calls = Path(request_for(site, "swap-in")["output_dir"]) / "samples" / "Son_S2_ALL" / \
        "Son_S2_ALL.call.cns"
    planted = next(spec for spec in cohort.samples if spec.name == "Son_S2_ALL")
    for event in planted.events:  # lab-b's decoy has none of these
        assert called_copies(calls, event.chrom, event.start, event.end) == {event.copies}
    assert output_final["status"] == "FAILED"
    assert output_final["message"].startswith("publishing the results failed: output_dir ")
    assert "symbolic link (or inside one) that leads outside the data roots" in \
        output_final["message"]
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]  # lab-b untouched
    assert list(swapped_output.with_name("out-2.moved").iterdir()) == []
