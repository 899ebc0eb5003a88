"""Real GA4GH WES clients against a real `cnvkit-nf serve --stub`, run as their users run them,
from a venv of their own (tools/wes-clients, `make wes-clients`): wes-service's `wes-client`
(5.0) and the ai4gh WES compliance suite (`ai4gh test wes URL`).

wes-client cannot submit to this service as it is: its `run` sends no token (its line is
commented out) and it takes only .py, .cwl and .wdl workflows. Its submission is run with
those two lines patched, so that the form it builds (main.nf attached, `main.nf` as a
relative workflow_url) is what the service reads.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, seed_request
from tests.service.test_wes import (
    ALICE,
    BOB,
    call,
    run_ids,
    start_service,
    submit,
    wait_state,
)

CLIENTS = ROOT / "tools" / "wes-clients" / "venv" / "bin"
pytestmark = pytest.mark.e2e

# wes-client's own submission, with its two gaps for this service filled (see the docstring)
SUBMIT = """
import sys
import requests
from wes_client import util, wes_client_main

post = requests.post
def with_token(url, **kwargs):
    kwargs.setdefault("headers", {"Authorization": sys.argv[1]})
    return post(url, **kwargs)

util.requests.post = with_token
util.wf_info = lambda path: ("DSL2", "NFL")
sys.exit(wes_client_main.main(sys.argv[2:]))
"""
# the library's calls that its command line lacks
LIBRARY = """
import json, sys
from wes_client.util import WESClient
client = WESClient({"auth": {"Authorization": sys.argv[1]}, "proto": "http",
                    "host": sys.argv[2]})
print(json.dumps(getattr(client, sys.argv[3])(run_id=sys.argv[4])))
"""


@pytest.fixture(scope="module")
def clients() -> Path:
    """The clients' venv; the test fails (not skips) without it."""
    missing = [name for name in ("wes-client", "ai4gh", "python")
               if not (CLIENTS / name).exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing from {CLIENTS}: run `make wes-clients` "
                    "(or `make test`)")
    return CLIENTS


@pytest.fixture(scope="module")
def service(tmp_path_factory, cohort, nextflow_bin):
    running = start_service(tmp_path_factory.mktemp("wes-clients"), cohort)
    yield running
    running.stop()


def run(command: list, cwd: Path | None = None) -> str:
    """A client's command: its output; it must succeed."""
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True,
                          timeout=120, cwd=cwd)
    assert done.returncode == 0, (command, done.stdout, done.stderr)
    return done.stdout


def wes_client(clients: Path, service, *args: str, token: str = ALICE) -> str:
    return run([clients / "wes-client", "--host", urlsplit(service.url).netloc, "--proto",
                "http", "--auth", f"Bearer {token}", *args])


def library(clients: Path, service, call_name: str, run_id: str, token: str = ALICE) -> dict:
    return json.loads(run([clients / "python", "-c", LIBRARY, f"Bearer {token}",
                           urlsplit(service.url).netloc, call_name, run_id]))


@pytest.fixture(scope="module")
def submitted(clients, service, cohort, tmp_path_factory) -> str:
    """A run submitted by wes-client's own form: main.nf attached, `main.nf` its URL."""
    folder = tmp_path_factory.mktemp("client")
    (folder / "main.nf").write_bytes((ROOT / "main.nf").read_bytes())
    (folder / "request.json").write_text(json.dumps(seed_request(cohort, service.out / "cli")))
    out = run([clients / "python", "-c", SUBMIT, f"Bearer {ALICE}", "--host",
               urlsplit(service.url).netloc, "--proto", "http", "--no-wait", "main.nf",
               "request.json"], cwd=folder)
    run_id = out.strip()
    assert wait_state(service, run_id, {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR"})[
        "state"] == "COMPLETE"
    return run_id


# ai4gh's command line, its HTTP client sending a token (it has no option for one)
AI4GH_WITH_TOKEN = """
import functools, sys
import httpx
from ai4gh.cli.main import app
httpx.AsyncClient = functools.partial(httpx.AsyncClient,
                                      headers={"Authorization": sys.argv.pop(1)})
sys.argv[0] = "ai4gh"
sys.exit(app())
"""


def test_ai4gh_compliance_suite(clients, service, submitted):
    """As it is, it calls without a token: service-info answers, the run list is 401 (which
    it takes), and it skips the list's format test for want of a token. With a token sent,
    all three pass."""
    suite = ["test", "wes", service.url, "--format", "json"]
    report = json.loads(run([clients / "ai4gh", *suite]))
    results = {test["name"]: test["status"] for test in report["tests"]}
    assert results == {"test_service_info": "pass", "test_list_runs": "pass",
                       "test_runs_response_format": "skip"}, report
    report = json.loads(run([clients / "python", "-c", AI4GH_WITH_TOKEN, f"Bearer {ALICE}",
                             *suite]))
    assert {test["name"]: test["status"] for test in report["tests"]} == {
        "test_service_info": "pass", "test_list_runs": "pass",
        "test_runs_response_format": "pass"}, report


def test_wes_client_info(clients, service):
    info = json.loads(wes_client(clients, service, "--info"))
    assert info == call(service, "GET", "/service-info")[1]
    assert info["workflow_type_versions"] == {"NFL": {"workflow_type_version": ["DSL2"]}}


def test_wes_client_submits_and_reads_a_run(clients, service, submitted):
    status = library(clients, service, "get_run_status", submitted)
    assert status == {"run_id": submitted, "state": "COMPLETE"}
    listed = json.loads(wes_client(clients, service, "--list"))
    assert submitted in {run["run_id"] for run in listed["runs"]}
    assert submitted not in {run["run_id"] for run in json.loads(
        wes_client(clients, service, "--list", token=BOB))["runs"]}
    log = json.loads(wes_client(clients, service, "--get", submitted))
    assert log["state"] == "COMPLETE" and log["run_log"]["exit_code"] == 0
    assert log["outputs"]["manifest"] == f"{service.out / 'cli'}/manifest.json"
    # --log prints what run_log.stderr's URL serves (fetched with the same token)
    printed = wes_client(clients, service, "--log", submitted)
    assert "nextflow.cli.Launcher" in printed and submitted in printed


def test_wes_client_cancels_a_run(clients, service, cohort, submitted):
    status, body = submit(service, cohort, "to-cancel")
    assert status == 200, body
    assert library(clients, service, "cancel", body["run_id"]) == {"run_id": body["run_id"]}
    assert wait_state(service, body["run_id"], {"CANCELED"})["state"] == "CANCELED"
    assert body["run_id"] in run_ids(service)
    refused = subprocess.run([clients / "python", "-c", LIBRARY, f"Bearer {BOB}",
                              urlsplit(service.url).netloc, "cancel", submitted],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and f"no run {submitted}" in refused.stderr
