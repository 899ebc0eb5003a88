"""The GA4GH WES 1.1 face of the job service (cnvkit_nf/wes.py), every answer checked against
the WES 1.1 OpenAPI document as sapporo publishes it on PyPI (`make test` fetches it)."""

from __future__ import annotations

import http.client
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import referencing
import yaml

from scaffold.local_service import LocalService
from tests.conftest import ROOT, seed_request

SPEC = ROOT / "tools" / "wes" / "ga4gh-wes-spec-1.1.0.yml"
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
    folder = tmp_path_factory.mktemp("wes")
    (folder / "out").mkdir()
    config = folder / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": ALICE, "owner": "alice", "projects": ["lab-a"]},
                   {"token": BOB, "owner": "bob", "projects": ["lab-b", "lab-c"]}],
        "data_roots": [str(cohort.ref.parent), {"path": str(folder / "out"),
                                                "writable": True}]}))
    running = LocalService(folder / "state", config, "--stub").start()
    running.out = folder / "out"
    yield running
    running.stop()


def call(service, method: str, path: str, token: str | None = ALICE, *,
         bearer: bool = True, body: bytes | None = None, content_type: str | None = None):
    url = urlsplit(service.url)
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
        return answer.status, json.loads(answer.read() or b"{}")
    finally:
        connection.close()


def multipart(fields: dict[str, str]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode()
        + value.encode() + b"\r\n" for name, value in fields.items())
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
        "CNVKIT:CNVKIT_COVERAGE", "CNVKIT:RESULT_MANIFEST"}
    for task in log["task_logs"]:
        check(task, "TaskLog")
    listed = json.loads((service.out / "run-1" / "manifest.json").read_text())["files"]
    assert set(log["outputs"]["files"]) == {item["path"] for item in listed}
    assert Path(log["outputs"]["files"]["sex/sex.tsv"]).is_file()
    # the seed API sees the same job
    assert service.call("GET", f"/v2.0/lab-a/gene/tools/cnvkit?instance-id={run_id}",
                        ALICE)[1]["instances"][0]["status"] == "FINISHED"


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
    run_id = submit(service, cohort, "run-4")[1]["run_id"]
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
