"""Black-box tests of the DLI "gene tools" cnvkit API, written from its public documentation only.

Sources of truth: /work/shared/seed/README.md (submit a cnvkit job) and
/work/shared/seed/RELATED_APIS.md (query, job states, cancel, errors, X-Auth-Token).
Nothing here is taken from the service's code: where the documents are silent, nothing is asserted.

One real server (``cnvkit-nf serve --stub``) is started for the module; requests go through both
``curl`` (a subprocess) and python ``requests``. The tests run in file order: the seed job is
submitted first, a job to cancel while it waits is submitted while the seed job runs, and the
default-limit test, which submits many jobs, comes last.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from scaffold.simulate import seed_like_cohort
from tests.conftest import CHROM, seed_request

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ALICE, BOB = "alice-dli-docs-token-00001", "bob-dli-docs-token-0000002"
SUBMIT = "/v2.0/{}/gene/tools/cnvkit"
CANCEL = "/v2.0/{}/gene/jobs/{}"

# RELATED_APIS.md: "status (String) is one of LAUNCHING (submitted), RUNNING, FINISHED, FAILED,
# CANCELLED, CANCELING"
STATES = {"LAUNCHING", "RUNNING", "FINISHED", "FAILED", "CANCELLED", "CANCELING"}
ENDED = {"FINISHED", "FAILED", "CANCELLED"}
# RELATED_APIS.md: "Codes in use: 400 DLI.0001 parameter validation failed, DLI.0002 object not
# found, DLI.0006 object already exists, DLI.0007 operation not supported, DLI.0009 system limit
# reached, DLI.0011 file permission error, DLI.0012 resource not available; 401 DLI.0013 user
# authentication failed, DLI.0014 service authentication failed; 404 DLI.0023 resource not found;
# 500 DLI.0999 internal server error."
CODE_STATUS = {"DLI.0001": 400, "DLI.0002": 400, "DLI.0006": 400, "DLI.0007": 400,
               "DLI.0009": 400, "DLI.0011": 400, "DLI.0012": 400, "DLI.0013": 401,
               "DLI.0014": 401, "DLI.0023": 404, "DLI.0999": 500}
# README.md request table: the field names of a submit request.
REQUIRED = ("experimental_inputs", "control_inputs", "output_dir", "ref", "bed")
OPTIONAL = ("has_annotate", "annotation_file", "target_conf", "antitarget_conf", "coverage_conf",
            "sex_conf", "reference_conf", "fix_conf", "segment_conf", "genemetrics_conf",
            "call_conf")


# --- the server ----------------------------------------------------------------------------------

class Server:
    """The running service, the generated cohort and the jobs the tests share."""

    def __init__(self, url: str, base: Path, cohort, log: Path):
        self.url, self.base, self.cohort, self.log = url, base, cohort, log
        self.seed: dict = {}
        self.running: requests.Response | None = None
        self.minimal: tuple[int, str, bytes] | None = None

    def request(self, name: str, **changes) -> dict:
        """The README's example request, paths on the generated cohort, its own output_dir."""
        return seed_request(self.cohort, self.base / "data" / "lab-a" / "out" / name, **changes)


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Server:
    base = tmp_path_factory.mktemp("dli_docs")
    for project in ("lab-a", "lab-b"):
        (base / "data" / project).mkdir(parents=True)
    cohort = seed_like_cohort(base / "data" / "lab-a" / "cohort", reads_per_sample=150_000,
                              seed=5, chrom_length=CHROM)
    config = base / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": ALICE, "owner": "alice", "projects": ["lab-a"]},
                   {"token": BOB, "owner": "bob", "projects": ["lab-b"]}],
        "data_roots": [str(base / "data" / "{project}")],
    }))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["NXF_OFFLINE"] = "true"
    env.setdefault("CNVKIT_NF_NEXTFLOW_DIR", str(ROOT / "tools" / "nextflow"))
    env["PYTHONPATH"] = str(ROOT)
    log = base / "serve.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [str(ROOT / "bin" / "cnvkit-nf"), "--state-dir", str(base / "state"), "serve",
             "--port", "0", "--service-config", str(config), "--stub"],
            stdout=subprocess.PIPE, stderr=err, env=env, cwd=base)
    first = proc.stdout.readline().decode().strip()
    match = re.fullmatch(r"listening on (http://127\.0\.0\.1:\d+)", first)
    if not match:
        proc.kill()
        proc.wait()
        pytest.fail(f"the server did not start: {first!r}\n{log.read_text()[-3000:]}")
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # keep its stdout drained
    srv = Server(match.group(1), base, cohort, log)
    # The seed job is submitted at once, so that it is the first job in the queue.
    srv.seed["request"] = srv.request("seed")
    srv.seed["submitted_ms"] = now_ms()
    srv.seed["answer"] = api(srv, "POST", SUBMIT.format("lab-a"), json=srv.seed["request"])
    # Next in the queue: the job to cancel once it runs, then one of only the required fields,
    # submitted with curl (a target for another project's token).
    srv.running = api(srv, "POST", SUBMIT.format("lab-a"), json=srv.request("running"))
    srv.minimal = curl(srv, "POST", SUBMIT.format("lab-a"), body=json.dumps(
        {key: srv.request("minimal")[key] for key in REQUIRED}).encode())
    yield srv
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def api(srv: Server, method: str, path: str, token: str | None = ALICE,
        **kwargs) -> requests.Response:
    headers = dict(kwargs.pop("headers", {}))
    if token is not None:
        headers["X-Auth-Token"] = token
    return requests.request(method, srv.url + path, headers=headers, timeout=30, **kwargs)


def curl(srv: Server, method: str, path: str, token: str | None = ALICE,
         body: bytes | None = None) -> tuple[int, str, bytes]:
    """(status, Content-Type, body) of one curl call."""
    args = ["curl", "-sS", "-X", method, "-w", "\n%{http_code} %{content_type}"]
    if token is not None:
        args += ["-H", f"X-Auth-Token: {token}"]
    if body is not None:
        args += ["-H", "Content-Type: application/json", "--data-binary", "@-"]
    done = subprocess.run(args + [srv.url + path], input=body or b"", capture_output=True,
                          timeout=30, check=True)
    payload, _, trailer = done.stdout.rpartition(b"\n")
    status, _, content_type = trailer.decode().partition(" ")
    return int(status), content_type, payload


def is_json(content_type: str) -> bool:
    return content_type.split(";")[0].strip().lower() == "application/json"


def check_error(status: int, content_type: str, body: bytes, code: str | None = None) -> dict:
    """RELATED_APIS.md: "Any failing call returns an HTTP 4xx/5xx status with a body
    { "error_code": "DLI.0001", "error_msg": "a human-readable reason" }", the code one of those
    in use, under the status the list gives it."""
    assert 400 <= status <= 599, (status, body)
    assert is_json(content_type), (content_type, body)
    doc = json.loads(body)
    assert isinstance(doc.get("error_code"), str), doc
    assert isinstance(doc.get("error_msg"), str) and doc["error_msg"].strip(), doc
    assert doc["error_code"] in CODE_STATUS, doc
    assert CODE_STATUS[doc["error_code"]] == status, (status, doc)
    if code is not None:
        assert doc["error_code"] == code, (status, doc)
    return doc


def check_refused(status: int, content_type: str, body: bytes) -> dict:
    """A cancel of an existing job that has ended: "cannot be cancelled" (RELATED_APIS.md) is an
    error of the documented form; the job exists, so it is not a not-found answer."""
    assert 400 <= status < 500, (status, body)
    doc = check_error(status, content_type, body)
    assert doc["error_code"] not in {"DLI.0002", "DLI.0023"}, doc
    return doc


def check_response_error(answer: requests.Response, code: str | None = None) -> dict:
    return check_error(answer.status_code, answer.headers.get("Content-Type", ""),
                       answer.content, code)


def submit(srv: Server, name: str, **changes) -> str:
    answer = api(srv, "POST", SUBMIT.format("lab-a"), json=srv.request(name, **changes))
    assert answer.status_code == 201, (answer.status_code, answer.text)
    return answer.json()["instance_id"]


def instance(srv: Server, instance_id: str, token: str = ALICE, project: str = "lab-a") -> dict:
    answer = api(srv, "GET", SUBMIT.format(project), token, params={"instance-id": instance_id})
    assert answer.status_code == 200, (answer.status_code, answer.text)
    found = [one for one in answer.json()["instances"] if one["instance_id"] == instance_id]
    assert len(found) == 1, answer.text
    return found[0]


def follow(srv: Server, instance_id: str, until, timeout: float) -> list[dict]:
    """Poll the job until until(instance) holds; every instance seen, in order."""
    seen, deadline = [], time.monotonic() + timeout
    while True:
        seen.append(instance(srv, instance_id))
        if until(seen[-1]):
            return seen
        if time.monotonic() > deadline:
            pytest.fail(f"job {instance_id} still {seen[-1]['status']} after {timeout} s: "
                        f"{[one['status'] for one in seen][-10:]}")
        time.sleep(0.2)


def instance_ids(srv: Server, **params) -> list[str]:
    answer = api(srv, "GET", SUBMIT.format("lab-a"), params=params)
    assert answer.status_code == 200, (answer.status_code, answer.text)
    return [one["instance_id"] for one in answer.json()["instances"]]


@pytest.fixture(scope="module")
def seed_id(server) -> str:
    answer = server.seed["answer"]
    assert answer.status_code == 201, (answer.status_code, answer.text)
    return answer.json()["instance_id"]


@pytest.fixture(scope="module")
def minimal_id(server) -> str:
    status, _, body = server.minimal
    assert status == 201, body
    return json.loads(body)["instance_id"]


@pytest.fixture(scope="module")
def running_id(server) -> str:
    assert server.running.status_code == 201, server.running.text
    return server.running.json()["instance_id"]


@pytest.fixture(scope="module")
def finished_seed(server, seed_id) -> dict:
    """The seed job followed until it ended, and when that was seen."""
    seen = follow(server, seed_id, lambda one: one["status"] in ENDED, timeout=60)
    return {"seen": seen, "ended_seen_ms": now_ms()}


# --- submit --------------------------------------------------------------------------------------

def test_submit_answers_201_with_an_instance_id(server, seed_id):
    # README.md: "Status code `201`. Body: `instance_id` (String) — the job ID, used to get the
    # job's status."
    answer = server.seed["answer"]
    assert answer.status_code == 201
    assert is_json(answer.headers.get("Content-Type", ""))
    assert isinstance(seed_id, str) and seed_id
    assert instance(server, seed_id)["instance_id"] == seed_id


def test_submit_with_curl_and_only_the_required_fields(server, seed_id):
    # README.md request table: only experimental_inputs, control_inputs, output_dir, ref, bed are
    # required.
    status, content_type, body = server.minimal
    assert status == 201, body
    assert is_json(content_type), content_type
    new_id = json.loads(body)["instance_id"]
    assert isinstance(new_id, str) and new_id and new_id != seed_id
    status, content_type, body = curl(server, "GET",
                                      SUBMIT.format("lab-a") + f"?instance-id={new_id}")
    assert status == 200 and is_json(content_type), (status, content_type, body)
    assert [one["instance_id"] for one in json.loads(body)["instances"]] == [new_id]


def _wrong(server: Server) -> dict[str, object]:
    good = server.request("wrong")
    cases: dict[str, object] = {}
    for key in REQUIRED:  # README.md: required "yes"
        cases[f"missing-{key}"] = {k: v for k, v in good.items() if k != key}
    cases["experimental_inputs-not-an-array"] = {**good, "experimental_inputs":
                                                 good["experimental_inputs"][0]}
    cases["control_inputs-array-of-non-strings"] = {**good, "control_inputs": [1, 2]}
    cases["output_dir-not-a-string"] = {**good, "output_dir": [good["output_dir"]]}
    cases["ref-not-a-string"] = {**good, "ref": 7}
    cases["bed-null"] = {**good, "bed": None}
    cases["has_annotate-not-a-boolean"] = {**good, "has_annotate": "yes"}
    cases["target_conf-not-a-string"] = {**good, "target_conf": 5}
    cases["call_conf-not-a-string"] = {**good, "call_conf": ["--center", "mean"]}
    # "annotation_file ... Required when has_annotate is true."
    cases["has_annotate-true-without-annotation_file"] = {
        **{k: v for k, v in good.items() if k != "annotation_file"}, "has_annotate": True}
    cases["body-not-an-object"] = [good]
    return cases


WRONG = ["missing-experimental_inputs", "missing-control_inputs", "missing-output_dir",
         "missing-ref", "missing-bed", "experimental_inputs-not-an-array",
         "control_inputs-array-of-non-strings", "output_dir-not-a-string", "ref-not-a-string",
         "bed-null", "has_annotate-not-a-boolean", "target_conf-not-a-string",
         "call_conf-not-a-string", "has_annotate-true-without-annotation_file",
         "body-not-an-object"]


@pytest.mark.parametrize("case", WRONG)
def test_a_wrong_documented_field_gets_400_dli_0001(server, case):
    # RELATED_APIS.md: "400 DLI.0001 parameter validation failed"
    answer = api(server, "POST", SUBMIT.format("lab-a"), json=_wrong(server)[case])
    assert answer.status_code == 400, answer.text
    check_response_error(answer, "DLI.0001")


def test_a_wrong_field_and_a_non_json_body_get_400_with_curl(server):
    body = json.dumps({**server.request("wrong-curl"), "has_annotate": "no"}).encode()
    status, content_type, payload = curl(server, "POST", SUBMIT.format("lab-a"), body=body)
    assert status == 400, payload
    check_error(status, content_type, payload, "DLI.0001")
    status, content_type, payload = curl(server, "POST", SUBMIT.format("lab-a"), body=b"{not json")
    assert status == 400, payload
    check_error(status, content_type, payload, "DLI.0001")


def test_an_input_outside_the_projects_data_root_is_refused(server):
    # Operator's recipe: a project may read only under its data root. The code is not documented
    # for this case; the answer must be an error of the documented form.
    outside = server.base / "data" / "lab-b" / "x.bam"
    answer = api(server, "POST", SUBMIT.format("lab-a"),
                 json=server.request("outside", experimental_inputs=[str(outside)]))
    assert 400 <= answer.status_code < 500, answer.text
    check_response_error(answer)


# --- authentication and projects -----------------------------------------------------------------

def test_another_projects_token_cannot_see_the_job(server, seed_id):
    # Bob's own project does not list alice's job ...
    answer = api(server, "GET", SUBMIT.format("lab-b"), BOB, params={"instance-id": seed_id})
    if answer.status_code == 200:
        assert seed_id not in [one["instance_id"] for one in answer.json()["instances"]]
    else:
        check_response_error(answer)
    answer = api(server, "GET", SUBMIT.format("lab-b"), BOB, params={"limit": 100})
    assert answer.status_code == 200, answer.text
    assert seed_id not in [one["instance_id"] for one in answer.json()["instances"]]
    # ... and bob's token does not open alice's project (nor alice's bob's).
    for token, project in [(BOB, "lab-a"), (ALICE, "lab-b")]:
        status, content_type, body = curl(server, "GET", SUBMIT.format(project)
                                          + f"?instance-id={seed_id}", token)
        assert 400 <= status < 500, (token, project, status, body)
        check_error(status, content_type, body)
        assert seed_id.encode() not in body
        answer = api(server, "POST", SUBMIT.format(project), token,
                     json=server.request(f"cross-{project}"))
        assert 400 <= answer.status_code < 500, answer.text
        check_response_error(answer)


def test_another_projects_token_cannot_cancel_the_job(server, minimal_id):
    for project in ("lab-b", "lab-a"):
        status, content_type, body = curl(server, "DELETE", CANCEL.format(project, minimal_id),
                                          BOB)
        assert 400 <= status < 500, (project, status, body)
        check_error(status, content_type, body)
    assert instance(server, minimal_id)["status"] not in {"CANCELING", "CANCELLED"}
    api(server, "DELETE", CANCEL.format("lab-a", minimal_id))  # not asserted: shortens the queue


BAD_TOKENS = {"no-header": None, "empty": "", "unknown": "not-a-token-of-this-service-0000"}
CALLS = ["submit", "list", "query-by-id", "cancel"]


def _call(server: Server, call: str, job_id: str) -> tuple[str, str, bytes | None]:
    return {"submit": ("POST", SUBMIT.format("lab-a"),
                       json.dumps(server.request("no-auth")).encode()),
            "list": ("GET", SUBMIT.format("lab-a"), None),
            "query-by-id": ("GET", SUBMIT.format("lab-a") + f"?instance-id={job_id}", None),
            "cancel": ("DELETE", CANCEL.format("lab-a", job_id), None)}[call]


@pytest.mark.parametrize("token", list(BAD_TOKENS))
@pytest.mark.parametrize("call", CALLS)
def test_missing_or_invalid_token_gets_401_dli_0013(server, minimal_id, call, token):
    # RELATED_APIS.md: "401 DLI.0013 user authentication failed ... Authentication is by a token
    # in the `X-Auth-Token` request header."
    method, path, body = _call(server, call, minimal_id)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if BAD_TOKENS[token] is not None:
        headers["X-Auth-Token"] = BAD_TOKENS[token]
    answer = requests.request(method, server.url + path, data=body, headers=headers, timeout=30)
    assert answer.status_code == 401, (answer.status_code, answer.text)
    check_response_error(answer, "DLI.0013")


@pytest.mark.parametrize("call", CALLS)
def test_missing_token_gets_401_dli_0013_with_curl(server, minimal_id, call):
    method, path, body = _call(server, call, minimal_id)
    status, content_type, payload = curl(server, method, path, token=None, body=body)
    assert status == 401, (status, payload)
    check_error(status, content_type, payload, "DLI.0013")


# --- query ---------------------------------------------------------------------------------------

def test_query_by_instance_id_returns_the_documented_fields(server, seed_id):
    before = server.seed["submitted_ms"]
    status, content_type, body = curl(server, "GET",
                                      SUBMIT.format("lab-a") + f"?instance-id={seed_id}")
    asked_ms = now_ms()
    assert status == 200 and is_json(content_type), (status, content_type, body)
    doc = json.loads(body)
    assert isinstance(doc["count"], int) and doc["count"] >= 1
    assert [one["instance_id"] for one in doc["instances"]] == [seed_id]
    job = doc["instances"][0]
    assert job["owner"] == "alice"  # "owner (who submitted it)"
    assert job["status"] in STATES
    # "progress (String) such as "1/3" — step 1 of 3 is running"
    assert isinstance(job["progress"], str) and re.fullmatch(r"\d+/\d+", job["progress"]), job
    step, steps = map(int, job["progress"].split("/"))
    assert step <= steps, job
    # "start_time (Unix ms)"
    assert isinstance(job["start_time"], int) and not isinstance(job["start_time"], bool)
    assert before - 5000 <= job["start_time"] <= asked_ms + 5000, (before, job, asked_ms)
    # "duration (seconds)"
    assert isinstance(job["duration"], (int, float)) and not isinstance(job["duration"], bool)
    assert 0 <= job["duration"] <= (asked_ms - job["start_time"]) / 1000 + 2, job
    # "message (String) — the reason when the job failed, otherwise null"
    assert "message" in job
    assert job["message"] is None or job["status"] == "FAILED", job


def test_query_echoes_every_request_field(server, seed_id):
    # RELATED_APIS.md: ""...": "every other field of the original request, echoed""
    job = instance(server, seed_id)
    request = server.seed["request"]
    assert set(request) == set(REQUIRED) | set(OPTIONAL)
    assert {key: job.get(key) for key in request} == request


@pytest.mark.parametrize("limit", ["0", "101", "-1", "1000", "abc"])
def test_limit_out_of_1_to_100_gets_400_dli_0001(server, limit):
    # RELATED_APIS.md: "limit | no | records per page, 1..100, default 10"
    answer = api(server, "GET", SUBMIT.format("lab-a"), params={"limit": limit})
    assert answer.status_code == 400, answer.text
    check_response_error(answer, "DLI.0001")
    status, content_type, body = curl(server, "GET", SUBMIT.format("lab-a") + f"?limit={limit}")
    assert status == 400, body
    check_error(status, content_type, body, "DLI.0001")


@pytest.mark.parametrize("limit", ["1", "100"])
def test_limit_1_and_100_are_accepted(server, seed_id, limit):
    answer = api(server, "GET", SUBMIT.format("lab-a"), params={"limit": limit})
    assert answer.status_code == 200, answer.text
    assert is_json(answer.headers.get("Content-Type", ""))
    assert 1 <= len(answer.json()["instances"]) <= int(limit)


def test_limit_and_offset_page_through_the_jobs(server, seed_id, minimal_id):
    # "offset | no | records to skip, default 0 (page n: limit*(n-1))"
    everything = instance_ids(server, limit=100)
    assert len(everything) >= 3 and len(set(everything)) == len(everything)
    assert {seed_id, minimal_id} <= set(everything)
    assert instance_ids(server, limit=100, offset=0) == everything
    for limit in (1, 2):
        paged = []
        for page in range(1, len(everything) // limit + 2):
            answer = api(server, "GET", SUBMIT.format("lab-a"),
                         params={"limit": limit, "offset": limit * (page - 1)})
            assert answer.status_code == 200, answer.text
            doc = answer.json()
            assert len(doc["instances"]) <= limit
            assert doc["count"] >= len(doc["instances"])
            paged += [one["instance_id"] for one in doc["instances"]]
        assert paged == everything, limit
    assert instance_ids(server, limit=100, offset=len(everything)) == []


def test_start_and_end_select_by_start_time_in_ms(server, seed_id):
    # "start | only jobs that started at or after this time (Unix time, milliseconds)"
    # "end | only jobs that started at or before this time (Unix time, milliseconds)"
    started = instance(server, seed_id)["start_time"]
    assert seed_id in instance_ids(server, limit=100, start=started)
    assert seed_id not in instance_ids(server, limit=100, start=started + 1)
    assert seed_id in instance_ids(server, limit=100, end=started)
    assert seed_id not in instance_ids(server, limit=100, end=started - 1)
    assert seed_id in instance_ids(server, limit=100, start=started, end=started)
    assert seed_id not in instance_ids(server, limit=100, start=started - 10_000,
                                       end=started - 1)
    answer = api(server, "GET", SUBMIT.format("lab-a"), params={"limit": 100, "start": started})
    assert all(one["start_time"] >= started for one in answer.json()["instances"])
    answer = api(server, "GET", SUBMIT.format("lab-a"), params={"limit": 100, "end": started})
    assert all(one["start_time"] <= started for one in answer.json()["instances"])
    # milliseconds, not seconds: a start in seconds of the same moment lies decades earlier
    assert seed_id in instance_ids(server, limit=100, start=started // 1000)
    assert seed_id not in instance_ids(server, limit=100, end=started // 1000)


# --- cancel a waiting job, then the seed job's states --------------------------------------------

def test_a_waiting_job_is_cancelled(server, seed_id):
    # RELATED_APIS.md: "DELETE /v2.0/{project_id}/gene/jobs/{job_id}   -> 200 {}"
    waiting = submit(server, "waiting")
    before = instance(server, waiting)["status"]
    assert before in {"LAUNCHING", "RUNNING"}, before
    status, content_type, body = curl(server, "DELETE", CANCEL.format("lab-a", waiting))
    assert status == 200, body
    assert is_json(content_type), content_type
    assert json.loads(body) == {}
    seen = follow(server, waiting, lambda one: one["status"] in ENDED, timeout=30)
    assert seen[-1]["status"] == "CANCELLED", [one["status"] for one in seen]
    assert {one["status"] for one in seen} <= {before, "RUNNING", "CANCELING", "CANCELLED"}
    # "A job that is already ... CANCELLED ... cannot be cancelled."
    answer = api(server, "DELETE", CANCEL.format("lab-a", waiting))
    check_refused(answer.status_code, answer.headers.get("Content-Type", ""), answer.content)
    assert instance(server, waiting)["status"] == "CANCELLED"


def test_the_seed_job_goes_launching_running_to_finished(finished_seed):
    statuses = [one["status"] for one in finished_seed["seen"]]
    assert statuses[-1] == "FINISHED", statuses
    assert set(statuses[:-1]) <= {"LAUNCHING", "RUNNING"}, statuses
    if "RUNNING" in statuses:  # LAUNCHING (submitted) comes before RUNNING, never after
        assert "LAUNCHING" not in statuses[statuses.index("RUNNING"):], statuses


def test_a_finished_jobs_message_is_null(finished_seed):
    # "message (String) — the reason when the job failed, otherwise null"
    job = finished_seed["seen"][-1]
    assert job["status"] == "FINISHED", job
    assert "message" in job and job["message"] is None, job["message"]


def test_a_finished_jobs_duration_is_in_seconds(server, finished_seed):
    job = finished_seed["seen"][-1]
    elapsed = (finished_seed["ended_seen_ms"] - job["start_time"]) / 1000
    assert 0 <= job["duration"] <= elapsed + 2, (job["duration"], elapsed)
    for one in finished_seed["seen"]:
        assert one["status"] in STATES and isinstance(one["progress"], str)


def test_cancelling_a_finished_job_is_refused(server, seed_id, finished_seed):
    # "A job that is already FINISHED, FAILED, CANCELLED or CANCELING cannot be cancelled."
    check_refused(*curl(server, "DELETE", CANCEL.format("lab-a", seed_id)))
    answer = api(server, "DELETE", CANCEL.format("lab-a", seed_id))
    check_refused(answer.status_code, answer.headers.get("Content-Type", ""), answer.content)
    assert instance(server, seed_id)["status"] == "FINISHED"


def test_a_running_job_is_cancelled(server, running_id, finished_seed):
    running = running_id
    follow(server, running, lambda one: one["status"] != "LAUNCHING", timeout=45)
    assert instance(server, running)["status"] == "RUNNING"
    answer = api(server, "DELETE", CANCEL.format("lab-a", running))
    assert answer.status_code == 200, answer.text
    assert is_json(answer.headers.get("Content-Type", ""))
    assert answer.json() == {}
    seen = follow(server, running, lambda one: one["status"] in ENDED, timeout=30)
    statuses = [one["status"] for one in seen]
    assert statuses[-1] == "CANCELLED", statuses
    assert set(statuses) <= {"RUNNING", "CANCELING", "CANCELLED"}, statuses


@pytest.mark.parametrize("job_id", ["00000000-0000-0001-0000-000000000002", "no-such-job"])
def test_cancelling_an_unknown_job_gets_a_not_found_error(server, job_id):
    # "DLI.0002 object not found" (400) or "404 DLI.0023 resource not found"
    status, content_type, body = curl(server, "DELETE", CANCEL.format("lab-a", job_id))
    doc = check_error(status, content_type, body)
    assert doc["error_code"] in {"DLI.0002", "DLI.0023"}, doc


def test_querying_an_unknown_instance_id_lists_nothing_or_is_not_found(server):
    answer = api(server, "GET", SUBMIT.format("lab-a"),
                 params={"instance-id": "00000000-0000-0001-0000-000000000002"})
    if answer.status_code == 200:
        assert answer.json()["instances"] == []
    else:
        assert check_response_error(answer)["error_code"] in {"DLI.0002", "DLI.0023"}


# --- errors --------------------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [
    ("GET", "/"), ("GET", "/no/such/path"), ("GET", "/v2.0/lab-a/gene/tools/no-such-tool"),
    ("POST", "/v2.0/lab-a/gene/tools/no-such-tool"), ("GET", "/v3.0/lab-a/gene/tools/cnvkit")])
def test_an_unknown_path_gets_404_dli_0023(server, method, path):
    # RELATED_APIS.md: "404 DLI.0023 resource not found"
    status, content_type, body = curl(server, method, path,
                                      body=b"{}" if method == "POST" else None)
    assert status == 404, (status, body)
    check_error(status, content_type, body, "DLI.0023")
    answer = api(server, method, path, json={} if method == "POST" else None)
    assert answer.status_code == 404, answer.text
    check_response_error(answer, "DLI.0023")


# --- last: the default limit (submits many jobs), every non-failed job's message ------------------

def test_the_default_limit_is_10(server):
    # "limit | no | records per page, 1..100, default 10"
    extra = []
    while len(instance_ids(server, limit=100)) < 11:
        extra.append(submit(server, f"many-{len(extra)}"))
    everything = instance_ids(server, limit=100)
    answer = api(server, "GET", SUBMIT.format("lab-a"))
    assert answer.status_code == 200, answer.text
    assert [one["instance_id"] for one in answer.json()["instances"]] == everything[:10]
    assert instance_ids(server, offset=10) == everything[10:20]
    for job_id in extra:  # not asserted: shortens the queue
        api(server, "DELETE", CANCEL.format("lab-a", job_id))


def test_no_job_that_did_not_fail_has_a_message(server):
    # "message (String) — the reason when the job failed, otherwise null"
    answer = api(server, "GET", SUBMIT.format("lab-a"), params={"limit": 100})
    assert answer.status_code == 200, answer.text
    wrong = [f'{one["instance_id"]} {one["status"]}: {one.get("message", "<no message key>")!r}'
             for one in answer.json()["instances"]
             if one["status"] != "FAILED" and one.get("message", "<absent>") is not None]
    assert not wrong, "\n".join(wrong)
