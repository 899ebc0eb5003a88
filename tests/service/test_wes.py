"""The GA4GH WES 1.1 face of the job service (cnvkit_nf/service/wes.py), every answer checked
against the WES 1.1 OpenAPI document as sapporo publishes it on PyPI (`make test` fetches it)."""

from __future__ import annotations

import csv
import http.client
import json
import re
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import referencing
import yaml

from cnvkit_nf.service import wes
from cnvkit_nf.service.http_server import _Headers
from cnvkit_nf.state.jobs import JobStore
from scaffold.local_service import LocalService
from tests.conftest import ROOT, seed_request
from tests.contract.test_request import best_time

SPEC = ROOT / "tools" / "wes" / "ga4gh-wes-spec-1.1.0.yml"
MAIN = ROOT / "main.nf"  # the pipeline's main script: what an attached workflow must be
ALICE, BOB = "wes-alice-token-0123456789", "wes-bob-token-0123456789"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def wes_spec() -> dict:
    if not SPEC.is_file():
        pytest.fail(f"{SPEC} is missing: run `make {SPEC.relative_to(ROOT)}` (or `make test`)")
    return yaml.safe_load(SPEC.read_text())


@pytest.fixture(scope="module")
def check(wes_spec):
    """check(answer, "RunLog"): validate against the document's schema of that name. Its
    references to other documents on the network cannot be resolved here: each is taken as
    "any value" and listed in `check.unresolved`."""
    unresolved: list[str] = []

    def local(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and not ref.startswith("#"):
                unresolved.append(ref)
                return {}
            return {key: local(value) for key, value in node.items()}
        return [local(item) for item in node] if isinstance(node, list) else node

    document = local(wes_spec)
    registry = referencing.Registry().with_resource(
        "urn:wes", referencing.Resource.from_contents(document, referencing.jsonschema.DRAFT4))

    def validate(answer: dict, name: str) -> None:
        schema = {"$ref": f"urn:wes#/components/schemas/{name}"}
        jsonschema.Draft4Validator(schema, registry=registry).validate(answer)

    validate.unresolved = unresolved
    return validate


@pytest.fixture(scope="module")
def service(tmp_path_factory, cohort, nextflow_bin):
    running = start_service(tmp_path_factory.mktemp("wes"), cohort)
    yield running
    running.stop()


def start_service(folder: Path, cohort) -> LocalService:
    """A `serve --stub` of two tokens, ALICE (lab-a) and BOB (lab-b, lab-c), its state in
    `folder`; `service.out` is where lab-a writes."""
    (folder / "out").mkdir()  # shared: each project writes in its own folder, out/<project>
    config = folder / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": ALICE, "owner": "alice", "projects": ["lab-a"]},
                   {"token": BOB, "owner": "bob", "projects": ["lab-b", "lab-c"]}],
        "data_roots": [str(cohort.ref.parent), {"path": str(folder / "out"),
                                                "writable": True}]}))
    running = LocalService(folder / "state", config, "--stub").start()
    running.out = folder / "out" / "lab-a"
    return running


def call(service, method: str, path: str, token: str | None = ALICE, *,
         bearer: bool = True, body: bytes | None = None, content_type: str | None = None):
    status, answer = exchange(service, method, path, token, bearer=bearer, body=body,
                              content_type=content_type)
    return status, json.loads(answer or b"{}")


def exchange(service, method: str, path: str, token: str | None = ALICE, *,
             bearer: bool = True, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, bytes]:
    """One WES request: the status and the body as sent."""
    status, _, answer = exchange_typed(service, method, path, token, bearer=bearer, body=body,
                                       content_type=content_type)
    return status, answer


def exchange_typed(service, method: str, path: str, token: str | None = ALICE, *,
                   bearer: bool = True, body: bytes | None = None,
                   content_type: str | None = None) -> tuple[int, str, bytes]:
    """One WES request (`path` under /ga4gh/wes/v1, or a whole URL): the status, the
    Content-Type and the body as sent."""
    url = urlsplit(service.url)
    if path.startswith("http"):
        path = urlsplit(path).path.removeprefix("/ga4gh/wes/v1")
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    headers = {}
    if token:
        headers["Authorization" if bearer else "X-Auth-Token"] = \
            f"Bearer {token}" if bearer else token
    if content_type:
        headers["Content-Type"] = content_type
    try:
        connection.request(method, "/ga4gh/wes/v1" + path, body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, answer.getheader("Content-Type") or "", answer.read()
    finally:
        connection.close()


def text(service, url: str, token: str | None = ALICE) -> tuple[int, str]:
    """An output URL's answer: its status and text (text/plain, or a JSON error)."""
    status, content_type, body = exchange_typed(service, "GET", url, token)
    assert content_type.startswith("text/plain" if status == 200 else "application/json")
    return status, body.decode()


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]] = ()
              ) -> tuple[bytes, str]:
    """A form of `fields` and workflow_attachment `files` (file name, bytes)."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode() + b"\r\n" for name, value in fields.items())
    body += b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="workflow_attachment"; '
        f'filename="{name}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
        + content + b"\r\n" for name, content in files)
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def submit(service, cohort, name: str, token: str = ALICE, **fields) -> tuple[int, dict]:
    request = seed_request(cohort, service.out / name)
    body, content_type = multipart({
        "workflow_params": json.dumps(request), "workflow_type": "NFL",
        "workflow_type_version": "DSL2", "workflow_url": "cnvkit-nf/cnvkit-nf", **fields})
    return call(service, "POST", "/runs", token, body=body, content_type=content_type)


def wait_state(service, run_id: str, states: set[str], timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = call(service, "GET", f"/runs/{run_id}/status")
        assert status == 200, body
        if body["state"] in states:
            return body
        time.sleep(0.5)
    raise AssertionError(f"{run_id} never reached {states}: {body}")


def test_service_info(service, check):
    status, body = call(service, "GET", "/service-info")
    assert status == 200
    check(body, "ServiceInfo")
    assert body["workflow_type_versions"] == {"NFL": {"workflow_type_version": ["DSL2"]}}
    assert check.unresolved == ["https://raw.githubusercontent.com/ga4gh-discovery/"
                                "ga4gh-service-info/v1.0.0/service-info.yaml"
                                "#/components/schemas/Service"]


def test_a_run_from_submission_to_its_outputs(service, cohort, check):
    status, body = submit(service, cohort, "run-1")
    assert status == 200, body
    check(body, "RunId")
    run_id = body["run_id"]
    check(wait_state(service, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"}),
          "RunStatus")
    status, log = call(service, "GET", f"/runs/{run_id}", bearer=False)  # X-Auth-Token too
    assert status == 200
    check(log, "RunLog")
    assert log["state"] == "COMPLETE" and log["run_log"]["exit_code"] == 0
    assert log["request"]["workflow_params"]["output_dir"].rstrip("/") == str(service.out / "run-1")
    assert {task["name"].split(" ")[0] for task in log["task_logs"]} >= {
        "CNVKIT:COVERAGE:CNVKIT_COVERAGE", "CNVKIT:RESULT_MANIFEST"}
    for task in log["task_logs"]:
        check(task, "TaskLog")
    listed = json.loads((service.out / "run-1" / "manifest.json").read_text())["files"]
    assert set(log["outputs"]["files"]) == {item["path"] for item in listed}
    assert Path(log["outputs"]["files"]["sex/sex.tsv"]).is_file()
    # the seed API sees the same job
    assert service.call("GET", f"/v2.0/lab-a/gene/tools/cnvkit?instance-id={run_id}",
                        ALICE)[1]["instances"][0]["status"] == "FINISHED"


def test_a_run_whose_params_name_a_samplesheet(service, cohort, check):
    """WES workflow_params are a request like any other: a samplesheet in the caller's roots
    is read, and the run's params carry its rows with their facts."""
    sheet = service.out / "sheets" / "seed.tsv"
    sheet.parent.mkdir(parents=True, exist_ok=True)
    sheet.write_text("sample\tbam\trole\tsex\n" + "".join(
        f"{spec.name}\t{cohort.bams[spec.name]}\t"
        f"{'control' if spec.control else 'experimental'}\t{spec.sex}\n"
        for spec in cohort.samples))
    request = {k: v for k, v in seed_request(cohort, service.out / "sheet").items()
               if not k.endswith("_inputs")}
    body, content_type = multipart({
        "workflow_params": json.dumps({**request, "samplesheet": str(sheet)}),
        "workflow_type": "NFL", "workflow_type_version": "DSL2",
        "workflow_url": "cnvkit-nf/cnvkit-nf"})
    status, body = call(service, "POST", "/runs", body=body, content_type=content_type)
    assert status == 200, body
    run_id = body["run_id"]
    assert wait_state(service, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})[
        "state"] == "COMPLETE"
    status, log = call(service, "GET", f"/runs/{run_id}")
    assert status == 200 and log["request"]["workflow_params"]["samplesheet"] == str(sheet)
    params = json.loads((service.state_dir / "runs" / run_id / "params.json").read_text())
    assert {(row["id"], row["role"], row["sex"]) for row in params["samples"]} == {
        (spec.name, "control" if spec.control else "experimental", spec.sex)
        for spec in cohort.samples}
    bad = multipart({"workflow_params": json.dumps({**request, "samplesheet": str(sheet)
                                                    .replace("seed.tsv", "gone.tsv")}),
                     "workflow_type": "NFL", "workflow_type_version": "DSL2",
                     "workflow_url": "cnvkit-nf/cnvkit-nf"})
    status, refused = call(service, "POST", "/runs", body=bad[0], content_type=bad[1])
    assert status == 400 and "samplesheet" in refused["msg"], refused


def test_runs_of_both_faces_are_listed_by_page(service, cohort, check):
    seed_api = service.call("POST", "/v2.0/lab-a/gene/tools/cnvkit", ALICE,
                            body=seed_request(cohort, service.out / "seed-face"))
    assert seed_api[0] == 201, seed_api
    submit(service, cohort, "run-2")
    seen, token = [], ""
    while True:
        status, page = call(service, "GET", f"/runs?page_size=1&page_token={token}"
                            if token else "/runs?page_size=1")
        assert status == 200
        check(page, "RunListResponse")
        assert len(page["runs"]) <= 1
        seen += [run["run_id"] for run in page["runs"]]
        token = page["next_page_token"]
        if not token:
            break
    assert seed_api[1]["instance_id"] in seen and len(seen) == len(set(seen)) >= 3


def test_cancel(service, cohort, check):
    run_id = submit(service, cohort, "run-3")[1]["run_id"]
    status, body = call(service, "POST", f"/runs/{run_id}/cancel")
    assert status == 200 and body == {"run_id": run_id}
    check(body, "RunId")
    assert wait_state(service, run_id, {"CANCELED"})["state"] == "CANCELED"
    status, body = call(service, "POST", f"/runs/{run_id}/cancel")
    assert status == 400
    check(body, "ErrorResponse")


def test_another_projects_runs_are_not_there(service, cohort, check):
    bobs_counts = call(service, "GET", "/service-info", BOB)[1]["system_state_counts"]
    run_id = submit(service, cohort, "run-4")[1]["run_id"]

    def bobs_answer(method: str, path: str, name: str, bearer: bool) -> tuple[int, bytes]:
        status, body = exchange(service, method, path.format(name), BOB, bearer=bearer)
        return status, body.replace(name.encode(), b"ID")

    for method, path in (("GET", "/runs/{}"), ("GET", "/runs/{}/status"),
                         ("POST", "/runs/{}/cancel"), ("DELETE", "/runs/{}")):
        for bearer in (True, False):  # byte for byte as a run that does not exist, id aside
            theirs = bobs_answer(method, path, run_id, bearer)
            assert theirs[0] == 404, theirs
            assert theirs == bobs_answer(method, path, str(uuid.uuid4()), bearer)
            check(json.loads(theirs[1]), "ErrorResponse")
    assert call(service, "GET", "/service-info", BOB)[1]["system_state_counts"] == bobs_counts
    assert call(service, "GET", f"/runs/{run_id}/status")[1]["state"] in {
        "QUEUED", "INITIALIZING", "RUNNING", "COMPLETE"}  # bob's cancels did nothing
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/status"):
        status, body = call(service, "GET", path, BOB)
        assert status == 404 and body["msg"] == f"no run {run_id}"
        check(body, "ErrorResponse")
    assert call(service, "GET", f"/runs/{uuid.uuid4()}", BOB)[1]["msg"].startswith("no run")
    listed = call(service, "GET", "/runs?page_size=100", BOB)[1]["runs"]
    assert run_id not in {run["run_id"] for run in listed}
    status, body = call(service, "GET", "/runs", None)
    assert status == 401
    check(body, "ErrorResponse")


def test_refused_runs_say_why(service, cohort, check):
    status, body = submit(service, cohort, "bad", workflow_type="CWL",
                          tags=json.dumps({"project": "lab-b"}))
    assert status == 400
    check(body, "ErrorResponse")
    assert "workflow_type must be 'NFL', got 'CWL'" in body["msg"]
    assert "tags.project must name one of your projects (lab-a)" in body["msg"]
    status, body = submit(service, cohort, "two", BOB)  # a token of two projects: name one
    assert status == 400 and "tags.project" in body["msg"]
    request = {**seed_request(cohort, service.out / "bad2"), "segment_conf": "-m nonsense"}
    payload, content_type = multipart({"workflow_params": json.dumps(request),
                                       "workflow_type": "NFL",
                                       "workflow_url": "cnvkit-nf/cnvkit-nf"})
    status, body = call(service, "POST", "/runs", body=payload, content_type=content_type)
    assert status == 400 and "segment_conf: cnvkit.py segment: argument -m/--method: " \
        "invalid choice: 'nonsense'" in body["msg"]
    check(body, "ErrorResponse")


def run_ids(service, token: str = ALICE) -> list[str]:
    """Every run a token's projects hold, page after page."""
    seen, page_token = [], ""
    while True:
        status, page = call(service, "GET", "/runs?page_size=100"
                            + (f"&page_token={page_token}" if page_token else ""), token)
        assert status == 200, page
        seen += [run["run_id"] for run in page["runs"]]
        page_token = page["next_page_token"]
        if not page_token:
            return seen


def _fields(**changes) -> dict[str, str]:
    return {"workflow_type": "NFL", "workflow_type_version": "DSL2",
            "workflow_url": "cnvkit-nf/cnvkit-nf", **changes}


def _form_of(**changes):
    """A valid RunWorkflow form (a request that would be queued) with `changes`; None drops a
    field."""
    def make(good: str) -> tuple[bytes, dict]:
        fields = {k: v for k, v in {**_fields(workflow_params=good), **changes}.items()
                  if v is not None}
        body, content_type = multipart(fields)
        return body, {"Content-Type": content_type}
    return make


def _raw(body: bytes, content_type: str | None = "multipart/form-data; boundary=b0undary",
         **headers):
    def make(good: str) -> tuple[bytes, dict]:
        sent = {**({"Content-Type": content_type} if content_type else {}), **headers}
        return body.replace(b"GOOD", good.encode()), sent
    return make


def _attached(*files: tuple[str, bytes], url: str = "main.nf"):
    """A valid form, its workflow_url `url`, with workflow_attachment `files`."""
    def make(good: str) -> tuple[bytes, dict]:
        body, content_type = multipart(_fields(workflow_params=good, workflow_url=url),
                                       list(files))
        return body, {"Content-Type": content_type}
    return make


def _json_body(text: bytes):
    return _raw(text, "application/json")


def _not_utf8(good: str) -> tuple[bytes, dict]:
    """A valid form whose output_dir has a byte that is not UTF-8 (it must not be replaced)."""
    body, content_type = multipart(_fields(workflow_params=good))
    return body.replace(b'never/"', b'never\xff/"'), {"Content-Type": content_type}



def _unclosed(good: str) -> tuple[bytes, dict]:
    """A valid form but for its closing boundary."""
    body, content_type = multipart(_fields(workflow_params=good))
    return body[:body.rindex(b"--", 0, -4)], {"Content-Type": content_type}


DEEP = "[" * 10_000  # deeper than any parser's recursion
NESTED_PART = (b'--b0undary\r\nContent-Disposition: form-data; name="workflow_params"\r\n'
               b"Content-Type: multipart/mixed; boundary=inner\r\n\r\n"
               b"--inner\r\n\r\nGOOD\r\n--inner--\r\n--b0undary--\r\n")
MALFORMED_RUNS = [
    ("no boundary", _raw(b"GOOD", "multipart/form-data"), "cannot be read"),
    ("broken boundary", _raw(b'--other\r\nContent-Disposition: form-data; '
                             b'name="workflow_params"\r\n\r\nGOOD\r\n--other--\r\n'),
     "cannot be read"),
    ("no closing boundary", _unclosed, "cannot be read"),
    ("a part that is itself multipart", _raw(NESTED_PART),
     "workflow_params must be a plain form field"),
    ("no workflow_params", _form_of(workflow_params=None), "workflow_params (the request, as "
     "JSON) is required"),
    ("workflow_params not JSON", _form_of(workflow_params='{"bed": '), "invalid JSON"),
    ("workflow_params not an object", _form_of(workflow_params="[]"), "expected object"),
    ("workflow_params nested 10,000 deep", _form_of(workflow_params=DEEP),
     "nested more than 32 levels deep"),
    ("workflow_params with a huge number", _form_of(workflow_params="9" * 5000),
     "a number of 5000 digits"),
    ("workflow_params not UTF-8", _not_utf8, "workflow_params is not UTF-8 text"),
    ("wrong workflow_type", _form_of(workflow_type="CWL"), "workflow_type must be 'NFL', "
     "got 'CWL'"),
    ("wrong workflow_type_version", _form_of(workflow_type_version="DSL1"),
     "workflow_type_version must be 'DSL2', got 'DSL1'"),
    ("wrong workflow_url", _form_of(workflow_url="https://example.org/x.nf"),
     "workflow_url must name this service's pipeline: its name 'cnvkit-nf/cnvkit-nf'; its "
     "repository https://github.com/cnvkit-nf/cnvkit-nf (.git, /, /tree/0.1.0, "
     "/blob/0.1.0/main.nf or #main.nf may follow, v0.1.0 too); or a relative URL naming a "
     "workflow_attachment whose bytes are its main.nf; got 'https://example.org/x.nf'"),
    ("another version", _form_of(workflow_url="https://github.com/cnvkit-nf/cnvkit-nf/tree/v9"),
     "workflow_url names version 'v9'; this service runs 0.1.0 only"),
    ("an absolute path", _form_of(workflow_url=str(MAIN)), "workflow_url must name this "
     "service's pipeline"),
    ("no workflow_url", _form_of(workflow_url=None), "workflow_url is required; workflow_url "
     "must name"),
    ("relative workflow_url, nothing attached", _form_of(workflow_url="main.nf"),
     "workflow_url 'main.nf' names no workflow_attachment (attached: none)"),
    ("an attachment not the pipeline's", _attached(("main.nf", MAIN.read_bytes() + b"\n")),
     "workflow_attachment 'main.nf' is not this service's pipeline: its bytes differ from "
     "main.nf"),
    ("an attachment besides the workflow", _attached(("main.nf", MAIN.read_bytes()),
                                                     ("nextflow.config", b"x")),
     "workflow_attachment 'nextflow.config' is not taken: only the workflow itself"),
    ("an attachment named ../x", _attached(("../x", MAIN.read_bytes()), url="../x"),
     "workflow_attachment file name '../x' is refused"),
    ("an attachment named a/../../x", _attached(("a/../../x", b"x")), "'a/../../x' is refused"),
    ("an attachment of an absolute name", _attached(("/etc/passwd", b"x")),
     "'/etc/passwd' is refused"),
    ("an attachment without a filename", _form_of(workflow_attachment="x"),
     "a workflow_attachment part has no filename"),
    ("five attachments", _attached(*[(f"{n}.nf", b"x") for n in range(5)]),
     "more than 4 workflow_attachment files"),
    ("an attachment of 300 KB", _attached(("main.nf", b"x" * 300_000)),
     "workflow_attachment 'main.nf' has 300000 bytes; at most 262144 are taken"),
    ("an attachment of 2 MB", _attached(("main.nf", b"x" * 2_000_000)),
     "system limit reached"),
    ("an attachment in a JSON body", _json_body(
        b'{"workflow_params": GOOD, "workflow_type": "NFL", "workflow_url": "main.nf", '
        b'"workflow_attachment": ["main.nf"]}'), "send workflow_attachment as files"),
    ("tags not JSON", _form_of(tags="{"), "tags must be a JSON object"),
    ("tags nested 10,000 deep", _form_of(tags=DEEP), "tags must be a JSON object"),
    ("tags.project a list", _form_of(tags='{"project": ["lab-a"]}'),
     "tags.project must name one of your projects (lab-a)"),
    ("tags.project an object", _form_of(tags='{"project": {"lab-a": 1}}'),
     "tags.project must name one of your projects (lab-a)"),
    ("oversized multipart", _form_of(workflow_engine_parameters="x" * (1 << 20)),
     "system limit reached"),
    ("chunked", _raw(b"2\r\n{}\r\n0\r\n\r\n", **{"Transfer-Encoding": "chunked"}),
     "not chunked"),
    ("JSON body not JSON", _json_body(b'{"workflow_params": '), "the body is not JSON"),
    ("JSON body not UTF-8", _json_body(b'{"workflow_params": "\xff"}'), "the body is not JSON"),
    ("JSON body an array", _json_body(b"[GOOD]"), "the body must be a JSON object"),
    ("JSON body a number", _json_body(b"1e999999"), "the body must be a JSON object"),
    ("JSON body nested 10,000 deep", _json_body(DEEP.encode()), "nested too deeply"),
    ("JSON body with a huge number", _json_body(b'{"workflow_params": ' + b"9" * 5000 + b"}"),
     "the body is not JSON"),
    ("JSON body, tags.project a list", _json_body(
        b'{"workflow_params": GOOD, "workflow_type": "NFL", "workflow_url": '
        b'"cnvkit-nf/cnvkit-nf", "tags": {"project": ["lab-a"]}}'), "tags.project"),
    ("oversized JSON body", _json_body(b'{"workflow_params": GOOD, "x": "'
                                       + b"x" * (1 << 20) + b'"}'), "system limit reached"),
    ("wrong Content-Type", _raw(b"GOOD", "text/plain"), "send the run as multipart/form-data"),
    ("no Content-Type", _raw(b"GOOD", None), "send the run as multipart/form-data"),
    ("urlencoded form", _raw(b"workflow_params=GOOD", "application/x-www-form-urlencoded"),
     "send the run as multipart/form-data"),
]


@pytest.mark.parametrize("make, text", [pytest.param(make, text, id=name)
                                        for name, make, text in MALFORMED_RUNS])
def test_malformed_runs_are_refused_and_nothing_is_queued(service, cohort, check, make, text):
    """Each would be queued but for its flaw: a 400 ErrorResponse that names it, never a 5xx."""
    good = json.dumps(seed_request(cohort, service.out / "never"))
    before = run_ids(service)
    body, headers = make(good)
    url = urlsplit(service.url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
    try:
        connection.request("POST", "/ga4gh/wes/v1/runs", body=body,
                           headers={"Authorization": f"Bearer {ALICE}", **headers})
        answer = connection.getresponse()
        status, payload = answer.status, json.loads(answer.read())
    finally:
        connection.close()
    assert status == 400, payload
    check(payload, "ErrorResponse")
    assert payload["status_code"] == 400 and text in payload["msg"], payload
    assert run_ids(service) == before
    assert not (service.out / "never").exists()


FORM_TYPE = "multipart/form-data; boundary=b0undary"
END = b"--b0undary--\r\n"


def _part(head: bytes, content: bytes = b"x") -> bytes:
    return b"--b0undary\r\n" + head + b"\r\n\r\n" + content + b"\r\n"


def _named(name: str) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"'.encode()


HOSTILE_FORMS = [  # (form, what it gives: its field names or the refusal's words); ~1 MB each
    (_part(_named("a") + b"; p=q" * 200_000) + END, "longer than 4096 bytes"),
    (_part(_named("a") + b"\r\nContent-Type: text/plain" + b"(c)" * 300_000) + END,
     "longer than 4096 bytes"),
    # the costliest heads within the limit, with a body of 1 MiB
    (b"".join(_part(_named(f"f{n}") + b"\r\nContent-Type: text/plain; c=d" + b"(c)" * 300,
                    b"v" * 250_000) for n in range(4)) + END, ["f0", "f1", "f2", "f3"]),
    (b"".join(_part(_named(f"f{n}")) for n in range(15_000)) + END, "more than 64 parts"),
    (_part(_named("a"), b"\r\n" * 500_000) + END, ["a"]),
    (_part(_named("a"), b"\r\n--b0undar" * 80_000) + END, ["a"]),
    (b"--b0undary\r\n" + _named("a") + b"\r\n" + b"x" * 1_000_000 + b"\r\n" + END,
     "part 1 has no blank line after its header lines"),
    (_part(_named("a"), b"v" * 1_000_000), "does not end with the closing boundary --b0undary--"),
]


@pytest.mark.parametrize("form, gives", HOSTILE_FORMS)
def test_a_hostile_form_is_read_in_well_under_a_second(form, gives):
    """The first took 22 s: `email.parser` takes time in proportion to the square of a header's
    length. A form's header lines are now found here and refused over 4 KiB in all."""
    def read():
        try:
            return list(wes._form(FORM_TYPE, form)[0])
        except wes.WesError as err:
            assert err.status == 400
            return str(err)

    assert len(form) <= 1 << 20  # the service's max_body_bytes
    assert best_time(read) < 1
    answer = read()
    assert answer == gives if isinstance(gives, list) else gives in answer, answer


def test_forms_are_read_as_clients_write_them():
    """Line breaks of LF alone, a quoted boundary, a preamble and an epilogue, a part without
    a name, base64 content."""
    body = (b"preamble\n--b0undary\n" + _named("workflow_type") + b"\n\nNFL\n--b0undary \n"
            + b"Content-Type: text/plain\n\nno name\n--b0undary\n" + _named("tags")
            + b"\nContent-Transfer-Encoding: base64\n\neyJwcm9qZWN0IjogImxhYi1hIn0=\n"
            + b"--b0undary--\nepilogue")
    assert wes._form('multipart/form-data; boundary="b0undary"', body) == (
        {"workflow_type": "NFL", "tags": '{"project": "lab-a"}'}, {})
    with pytest.raises(wes.WesError, match="the Content-Type names no boundary"):
        wes._form("multipart/form-data", body)


@pytest.mark.parametrize("query", ["page_size=%C2%B2", "page_size=" + "1" * 5000,
                                   "page_size=0", "page_size=101", "page_size=-1"])
def test_page_sizes_that_are_not_counts_are_refused(service, cohort, check, query):
    """"²" is a digit to str.isdigit but not to int: it was a 500."""
    for path in ("/runs", f"/runs/{submit_and_cancel(service, cohort, 'sizes')}/tasks"):
        status, body = call(service, "GET", f"{path}?{query}")
        assert status == 400, body
        check(body, "ErrorResponse")
        assert body["msg"] == "page_size must be 1..100"


FORGED_TOKENS = [
    "0", "10", "9" * 19, "%C2%B2", "-1",  # the offsets of old: no more
    wes.page_token("runs", 1, "not-a-uuid"), wes.page_token("runs", -1, str(uuid.uuid4())),
    wes.page_token("runs", 10**19, str(uuid.uuid4())), wes.page_token("tasks", 3),
    wes.page_token("runs", 1, str(uuid.uuid4())) + "==",  # not as this service writes it
    wes.page_token("runs", 1, str(uuid.uuid4()).upper()), "cnVucw", "!" * 10, "A" * 201]


@pytest.mark.parametrize("forged", FORGED_TOKENS)
def test_a_page_token_this_service_did_not_give_is_refused(service, check, forged):
    status, body = call(service, "GET", f"/runs?page_token={forged}")
    assert status == 400, body
    check(body, "ErrorResponse")
    assert body["msg"].endswith("is not one this service gave"), body


def submit_and_cancel(service, cohort, name: str, **fields) -> str:
    """A run submitted (with form `fields`) and cancelled at once: it loads no worker."""
    status, body = submit(service, cohort, f"{name}-{uuid.uuid4().hex[:8]}", **fields)
    assert status == 200, body
    assert call(service, "POST", f"/runs/{body['run_id']}/cancel")[0] == 200
    return body["run_id"]


def test_run_pages_stay_put_while_runs_are_submitted(service, cohort, check):
    """Page tokens hold where a page ended (created, run_id): runs submitted between pages
    neither repeat a run on the next page nor push one off it."""
    while len(run_ids(service)) < 5:
        submit_and_cancel(service, cohort, "page")
    before = run_ids(service)
    status, first = call(service, "GET", "/runs?page_size=2")
    assert status == 200
    check(first, "RunListResponse")
    new = [submit_and_cancel(service, cohort, "between") for _ in range(3)]
    seen, token = [run["run_id"] for run in first["runs"]], first["next_page_token"]
    while token:
        status, page = call(service, "GET", f"/runs?page_size=2&page_token={token}")
        assert status == 200, page
        check(page, "RunListResponse")
        seen += [run["run_id"] for run in page["runs"]]
        token = page["next_page_token"]
    assert seen == before  # each once, none skipped, newest first
    assert run_ids(service)[:3] == new[::-1]


def test_store_keyset_pages_keep_jobs_of_one_millisecond_in_order(tmp_path):
    """Jobs created in the same ms keep their order (newest first) across keyset pages; a page's
    last job deleted before the next page: those of its ms are listed again, none skipped."""
    store = JobStore(tmp_path / "jobs.sqlite")
    ids = [store.create({"n": n}, runner="service").instance_id for n in range(7)]
    for instance_id in ids:
        store.update(instance_id, created=1000)
    newest_first, seen, after = ids[::-1], [], None
    while page := store.list(limit=3, after=after)[1]:
        seen += [job.instance_id for job in page]
        after = page[-1].created, page[-1].instance_id
    assert seen == newest_first
    first = store.list(limit=3)[1]
    assert store.forget(first[-1].instance_id, ended_before=1 << 62) is False  # not ended
    store.cancelled(first[-1].instance_id)
    assert store.forget(first[-1].instance_id, ended_before=1 << 62)
    again = store.list(limit=10, after=(1000, first[-1].instance_id))[1]
    assert [job.instance_id for job in again] == [i for i in newest_first
                                                  if i != first[-1].instance_id]


def test_service_info_without_a_token_counts_nothing(service, cohort, check):
    """The ai4gh compliance suite asks without a token: the service is described, no runs
    counted. A token's answer counts its projects' runs; a token that is not valid is 401."""
    submit_and_cancel(service, cohort, "count")
    status, anonymous = call(service, "GET", "/service-info", None)
    assert status == 200
    check(anonymous, "ServiceInfo")
    assert anonymous["system_state_counts"] == {}
    alice = call(service, "GET", "/service-info")[1]
    assert {**alice, "system_state_counts": {}} == anonymous
    assert sum(alice["system_state_counts"].values()) == len(run_ids(service)) > 0
    assert alice["system_state_counts"]["CANCELED"] >= 1
    bob = call(service, "GET", "/service-info", BOB)[1]["system_state_counts"]
    assert sum(bob.values()) == len(run_ids(service, BOB))
    for bearer in (True, False):
        status, body = call(service, "GET", "/service-info", "not-a-token", bearer=bearer)
        assert status == 401, body
        check(body, "ErrorResponse")


def test_every_workflow_url_naming_the_pipeline_is_taken(service, cohort, check):
    """Its name, its repository's URLs, and the relative URL of an attached copy of its
    main.nf (what wes-client sends: the file, and its base name as workflow_url)."""
    main = [("main.nf", MAIN.read_bytes())]
    for url, files in (
            ("https://github.com/cnvkit-nf/cnvkit-nf", ()),
            ("http://GitHub.com/cnvkit-nf/cnvkit-nf.git/", ()),
            ("https://github.com/cnvkit-nf/cnvkit-nf/tree/v0.1.0", ()),
            ("https://github.com/cnvkit-nf/cnvkit-nf/blob/0.1.0/main.nf", ()),
            ("https://github.com/cnvkit-nf/cnvkit-nf#main.nf", ()),
            ("main.nf", main), ("./main.nf", main),
            ("pipeline/main.nf", [("pipeline/main.nf", MAIN.read_bytes())])):
        form, content_type = multipart(_fields(
            workflow_params=json.dumps(seed_request(cohort, service.out / "forms"
                                                    / uuid.uuid4().hex)),
            workflow_url=url), list(files))
        status, body = call(service, "POST", "/runs", body=form, content_type=content_type)
        assert status == 200, (url, body)
        check(body, "RunId")
        assert call(service, "POST", f"/runs/{body['run_id']}/cancel")[0] == 200
    assert wes.workflow_problem("main.nf", {"main.nf": MAIN.read_bytes()}) is None


def test_times_are_iso_8601():
    """One form for every WES time: the jobs' (Unix ms) and the trace's (local time)."""
    assert wes.iso_time(1_714_568_523_456) == "2024-05-01T13:02:03Z"
    local = time.mktime((2024, 5, 1, 13, 2, 3, 0, 0, -1))
    assert wes.iso_time(wes._trace_ms("2024-05-01 13:02:03.456")) == \
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(local))
    assert wes._trace_ms("-") is None and wes._trace_ms(None) is None


def test_a_path_component_over_255_bytes_is_refused_by_name(service, cohort, check):
    """Opening such a path raised ENAMETOOLONG, a 500; a missing folder of such a name was not
    seen at all until the job tried to make it. On both faces."""
    long, data = "a" * 300, cohort.ref.parent
    good = seed_request(cohort, service.out / "long")
    for field, change, size in (
            ("ref", {"ref": f"{data}/{long}/ref.fa"}, 300),
            ("experimental_inputs[0]", {"experimental_inputs": [f"{data}/{long}.bam"]}, 304),
            ("output_dir", {"output_dir": f"{service.out}/{long}/out"}, 300),
            ("output_dir", {"output_dir": f"{service.out}/new/{long}"}, 300)):
        said = f"a path component is longer than 255 bytes: {'a' * 40}... ({size} bytes)"
        status, body = service.call("POST", "/v2.0/lab-a/gene/tools/cnvkit", ALICE,
                                    {**good, **change})
        assert status == 400, body
        assert [(p["field"], p["message"].endswith(said)) for p in body["problems"]] == [
            (field, True)], body
        form, content_type = multipart(_fields(workflow_params=json.dumps({**good, **change})))
        status, body = call(service, "POST", "/runs", body=form, content_type=content_type)
        assert status == 400 and said in body["msg"], body
        check(body, "ErrorResponse")
    assert not (service.out / "new").exists()


def test_an_overlong_run_id_is_not_found(service, check):
    run_id = "x" * 300
    for method, path in (("DELETE", ""), ("GET", "/log"), ("POST", "/retry")):
        status, body = service.call(method, f"/v2.0/lab-a/gene/tools/cnvkit/{run_id}{path}",
                                    ALICE)
        assert (status, body["error_code"]) == (404, "DLI.0023"), body
    for method, path in (("GET", ""), ("GET", "/status"), ("POST", "/cancel")):
        status, body = call(service, method, f"/runs/{run_id}{path}")
        assert status == 404, body
        check(body, "ErrorResponse")


ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


@pytest.fixture(scope="module")
def kept_run(service, cohort, tmp_path_factory) -> dict:
    """A run whose tasks all ran, FAILED as it published (its output folder swapped for a link
    out of the data roots while it ran), so that its work dir is kept (a finished run's is
    deleted): its RunLog and its folders."""
    out = service.out / "kept"
    out.mkdir(parents=True)
    status, body = submit(service, cohort, "kept")
    assert status == 200, body
    run_id = body["run_id"]
    wait_state(service, run_id, {"RUNNING"})
    out.rename(out.with_name("kept.moved"))
    out.symlink_to(tmp_path_factory.mktemp("elsewhere"), target_is_directory=True)
    assert wait_state(service, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})[
        "state"] == "EXECUTOR_ERROR"
    status, log = call(service, "GET", f"/runs/{run_id}")
    assert status == 200, log
    run_dir = service.state_dir / "runs" / run_id
    return {"id": run_id, "log": log, "run_dir": run_dir, "work": run_dir / "work",
            "trace": run_dir / "results" / "pipeline_info" / "trace.tsv"}


def test_tasks_page_by_page_and_one_by_one(service, kept_run, check):
    run_id, log = kept_run["id"], kept_run["log"]
    check(log, "RunLog")
    assert log["task_logs_url"] == f"{service.url}/ga4gh/wes/v1/runs/{run_id}/tasks"
    tasks, token, pages = [], "", 0
    while True:
        status, page = call(service, "GET", f"/runs/{run_id}/tasks?page_size=3"
                            + (f"&page_token={token}" if token else ""))
        assert status == 200, page
        check(page, "TaskListResponse")
        assert len(page["task_logs"]) <= 3
        tasks += page["task_logs"]
        token, pages = page["next_page_token"], pages + 1
        if not token:
            break
    ids = [task["id"] for task in tasks]
    assert ids == [task["id"] for task in log["task_logs"]] == sorted(ids, key=int)
    assert len(set(ids)) == len(ids) >= 4 and pages == -(-len(ids) // 3)
    for task in tasks:
        check(task, "TaskLog")
        assert call(service, "GET", f"/runs/{run_id}/tasks/{task['id']}")[1] == task
        assert re.fullmatch(ISO, task["start_time"]) and re.fullmatch(ISO, task["end_time"])
        assert task["start_time"] <= task["end_time"] and task["exit_code"] == 0
    for missing in ("99999", "abc", "1" * 300):
        status, body = call(service, "GET", f"/runs/{run_id}/tasks/{missing}")
        assert status == 404 and body["msg"] == f"no task {missing} in run {run_id}", body
        check(body, "ErrorResponse")
    status, body = call(service, "GET", f"/runs/{run_id}/tasks?page_token="
                        + wes.page_token("runs", 1, run_id))
    assert status == 400 and body["msg"].endswith("is not one this service gave")
    for path in ("/tasks", f"/tasks/{ids[0]}"):  # another project's: as no run at all
        theirs = exchange(service, "GET", f"/runs/{run_id}{path}", BOB)
        other = str(uuid.uuid4())
        nobodys = exchange(service, "GET", f"/runs/{other}{path}", BOB)
        assert theirs[0] == 404 and theirs == (404, nobodys[1].replace(other.encode(),
                                                                        run_id.encode()))


def _task_folder(kept_run: dict, task: dict) -> Path:
    row = next(row for row in csv.DictReader(kept_run["trace"].open(), delimiter="\t")
               if row["task_id"] == task["id"])
    return Path(row["workdir"])


def test_output_urls_serve_the_runs_and_tasks_output(service, kept_run):
    """The RunLog links Nextflow's console output and log, each TaskLog its task's
    .command.out and .command.err, all served with the run's token only."""
    run_id, log = kept_run["id"], kept_run["log"]
    base = f"{service.url}/ga4gh/wes/v1/runs/{run_id}"
    assert (log["run_log"]["stdout"], log["run_log"]["stderr"]) == (f"{base}/stdout",
                                                                    f"{base}/stderr")
    status, stdout = text(service, log["run_log"]["stdout"])
    assert status == 200 and "N E X T F L O W" in stdout
    assert stdout == (kept_run["run_dir"] / "nextflow.out").read_text()
    status, stderr = text(service, log["run_log"]["stderr"])
    assert status == 200 and stderr == (kept_run["run_dir"] / ".nextflow.log").read_text()
    task = log["task_logs"][0]
    assert task["stdout"] == f"{base}/tasks/{task['id']}/stdout"
    assert task["stderr"] == f"{base}/tasks/{task['id']}/stderr"
    folder = _task_folder(kept_run, task)
    assert folder.parent.parent == kept_run["work"]
    with open(folder / ".command.out", "a") as handle:
        handle.write("the task said this\n")
    assert text(service, task["stdout"]) == (200, (folder / ".command.out").read_text())
    assert text(service, task["stderr"]) == (200, (folder / ".command.err").read_text())
    urls = [log["run_log"]["stdout"], log["run_log"]["stderr"], task["stdout"], task["stderr"]]
    other = str(uuid.uuid4())
    for url in urls:  # another project's token: as a run that does not exist
        theirs = exchange(service, "GET", url, BOB)
        nobodys = exchange(service, "GET", url.replace(run_id, other), BOB)
        assert theirs[0] == 404 and theirs == (404, nobodys[1].replace(other.encode(),
                                                                        run_id.encode()))
        assert exchange(service, "GET", url, None)[0] == 401
        assert exchange(service, "GET", url, "not-a-token")[0] == 401


def test_output_is_served_from_its_end(service, kept_run):
    """A long output: its last TAIL_BYTES, after a line that says so."""
    task = kept_run["log"]["task_logs"][1]
    out = _task_folder(kept_run, task) / ".command.out"
    out.write_text("early\n" + "x" * (wes.TAIL_BYTES - 1) + "\nthe end\n")
    size = out.stat().st_size
    status, served = text(service, task["stdout"])
    assert status == 200
    head, rest = served.split("\n", 1)
    assert head == f"[the last {wes.TAIL_BYTES} bytes of {size}]"
    assert rest.endswith("\nthe end\n") and "early" not in rest
    assert len(rest.encode()) == wes.TAIL_BYTES


def test_output_is_never_read_through_a_link_or_outside_the_runs_folders(service, kept_run,
                                                                         tmp_path):
    """A link in a task's folder or the run folder, and a trace row whose workdir lies
    elsewhere, serve nothing (and are not linked): 404."""
    secret = tmp_path / "secret.txt"
    secret.write_text("lab-b's secret\n")
    run_id, tasks = kept_run["id"], kept_run["log"]["task_logs"]
    err = _task_folder(kept_run, tasks[2]) / ".command.err"
    err.unlink()
    err.symlink_to(secret)
    nextflow_log = kept_run["run_dir"] / ".nextflow.log"
    nextflow_log.rename(nextflow_log.with_name(".nextflow.log.kept"))
    nextflow_log.symlink_to(secret)
    elsewhere = tmp_path / "ab" / ("c" * 30)
    elsewhere.mkdir(parents=True)
    (elsewhere / ".command.out").write_text("lab-b's secret\n")
    trace = kept_run["trace"].read_text()
    forged = _task_folder(kept_run, tasks[3])
    kept_run["trace"].write_text(trace.replace(str(forged), str(elsewhere)))
    try:
        status, log = call(service, "GET", f"/runs/{run_id}")
        assert status == 200
        by_id = {task["id"]: task for task in log["task_logs"]}
        assert "stderr" not in by_id[tasks[2]["id"]] and "stdout" in by_id[tasks[2]["id"]]
        assert "stdout" not in by_id[tasks[3]["id"]]
        assert "stderr" not in log["run_log"] and "stdout" in log["run_log"]
        for url in (tasks[2]["stderr"], tasks[3]["stdout"], log["run_log"]["stdout"]
                    .replace("/stdout", "/stderr")):
            status, body = call(service, "GET", url)
            assert status == 404 and body["msg"] == f"run {run_id} has no such output (yet)"
    finally:  # as it was, for the tests after
        kept_run["trace"].write_text(trace)
        nextflow_log.unlink()
        nextflow_log.with_name(".nextflow.log.kept").rename(nextflow_log)


def test_output_urls_answer_text_plain(service, kept_run):
    status, content_type, body = exchange_typed(service, "GET",
                                                kept_run["log"]["run_log"]["stdout"])
    assert status == 200 and content_type == "text/plain; charset=utf-8"
    assert b"N E X T F L O W" in body


def test_output_urls_take_the_scheme_the_request_came_by():
    """A service started with --tls-cert names https URLs (the transport says the scheme)."""
    for scheme, forwarded, expected in (("https", [], "https"), ("http", [], "http"),
                                        ("http", [(b"x-forwarded-proto", b"https")], "https")):
        headers = _Headers([(b"host", b"wes.example:8443"), *forwarded], scheme)
        assert wes._Links(headers, "r1").url("stdout") == \
            f"{expected}://wes.example:8443/ga4gh/wes/v1/runs/r1/stdout"
