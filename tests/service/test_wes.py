"""The GA4GH WES 1.1 face of the job service (cnvkit_nf/service/wes.py), every answer checked
against the WES 1.1 OpenAPI document as sapporo publishes it on PyPI (`make test` fetches it)."""

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

from cnvkit_nf.service import wes
from scaffold.local_service import LocalService
from tests.conftest import ROOT, seed_request
from tests.contract.test_request import best_time

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
    (folder / "out").mkdir()  # shared: each project writes in its own folder, out/<project>
    config = folder / "service.json"
    config.write_text(json.dumps({
        "tokens": [{"token": ALICE, "owner": "alice", "projects": ["lab-a"]},
                   {"token": BOB, "owner": "bob", "projects": ["lab-b", "lab-c"]}],
        "data_roots": [str(cohort.ref.parent), {"path": str(folder / "out"),
                                                "writable": True}]}))
    running = LocalService(folder / "state", config, "--stub").start()
    running.out = folder / "out" / "lab-a"
    yield running
    running.stop()


def call(service, method: str, path: str, token: str | None = ALICE, *,
         bearer: bool = True, body: bytes | None = None, content_type: str | None = None):
    status, answer = exchange(service, method, path, token, bearer=bearer, body=body,
                              content_type=content_type)
    return status, json.loads(answer or b"{}")


def exchange(service, method: str, path: str, token: str | None = ALICE, *,
             bearer: bool = True, body: bytes | None = None,
             content_type: str | None = None) -> tuple[int, bytes]:
    """One WES request: the status and the body as sent."""
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
        return answer.status, answer.read()
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
     "workflow_url must be 'cnvkit-nf/cnvkit-nf'"),
    ("no workflow_url", _form_of(workflow_url=None), "workflow_url must be"),
    ("tags not JSON", _form_of(tags="{"), "tags must be a JSON object"),
    ("tags nested 10,000 deep", _form_of(tags=DEEP), "tags must be a JSON object"),
    ("tags.project a list", _form_of(tags='{"project": ["lab-a"]}'),
     "tags.project must name one of your projects (lab-a)"),
    ("tags.project an object", _form_of(tags='{"project": {"lab-a": 1}}'),
     "tags.project must name one of your projects (lab-a)"),
    ("workflow_attachment", _form_of(workflow_attachment="x"), "workflow_attachment is not "
     "taken"),
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
            return list(wes._form(FORM_TYPE, form))
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
    assert wes._form('multipart/form-data; boundary="b0undary"', body) == {
        "workflow_type": "NFL", "tags": '{"project": "lab-a"}'}
    with pytest.raises(wes.WesError, match="the Content-Type names no boundary"):
        wes._form("multipart/form-data", body)


@pytest.mark.parametrize("query", ["page_token=" + "9" * 19, "page_token=%C2%B2",
                                   "page_size=%C2%B2", "page_size=" + "1" * 5000,
                                   "page_token=-1"])
def test_page_tokens_and_sizes_that_are_not_counts_are_refused(service, check, query):
    """19 digits overflowed SQLite's integers and "²" is a digit to str.isdigit but not to int:
    both were 500s."""
    status, body = call(service, "GET", f"/runs?{query}")
    assert status == 400, body
    check(body, "ErrorResponse")
    assert body["msg"] == "page_size must be 1..100 and page_token one this service gave"


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
