"""A GA4GH WES 1.1 face over the job service's jobs, under `/ga4gh/wes/v1`.

A run is a job: `workflow_params` is the seed request, `workflow_type` NFL (DSL2), and
`workflow_url` names this pipeline (`manifest.name` of nextflow.config). The same tokens and
projects apply as on the seed API (`Authorization: Bearer TOKEN` or `X-Auth-Token`); a run's
project is its `tags.project`, which may be left out by a token of one project. Another
project's runs are answered 404, as runs that do not exist.

It is one of the job service's two faces over its job API (`job_api`), and answers every target
under `ROOT` (`app` routes them). Errors take WES's form: `{"msg", "status_code"}`.
"""

from __future__ import annotations

import email.message
import email.parser
import email.policy
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs

from cnvkit_nf.contract.pipeline_schema import manifest as pipeline_manifest
from cnvkit_nf.launch import nextflow
from cnvkit_nf.launch.runner import trace_rows
from cnvkit_nf.service.api_error import ApiError, allow
from cnvkit_nf.service.config import Caller
from cnvkit_nf.service.job_api import Conflict, JobError, Jobs, NotFound
from cnvkit_nf.state.jobs import (
    CANCELING,
    CANCELLED,
    FAILED,
    FINISHED,
    LAUNCHING,
    RUNNING,
    Failure,
    Job,
)
from cnvkit_nf.state.layout import RunFolder
from cnvkit_nf.storage import manifest

ROOT = "/ga4gh/wes/"  # every target under it is WES's
PREFIX = f"{ROOT}v1"
RUNS = f"{PREFIX}/runs"
WORKFLOW_TYPE, WORKFLOW_TYPE_VERSION = "NFL", "DSL2"
_RUN = re.compile(rf"{PREFIX}/runs/([^/]+)(/status|/cancel)?")
MAX_PAGE = 100
_COUNT = re.compile(r"[0-9]{1,18}")  # ASCII digits (str.isdigit takes "²"), SQLite's 64 bits
# A RunWorkflow form has 9 fields, each with a header line or two: a form of more parts, or
# with more header bytes in all, is refused (see `_parts`).
MAX_PARTS, MAX_HEADS = 64, 4 << 10
_BLANK_LINE = re.compile(rb"(?:\A|\r?\n)\r?\n")  # ends a part's header lines (maybe none)


class WesError(ApiError):
    """An error answer of WES's own (it has no code of the service family's)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, "", message)


def error_body(err: ApiError) -> dict:
    """An error answer's body in WES's form."""
    return {"msg": str(err), "status_code": err.status}


def workflow_url() -> str:
    """What `workflow_url` must name: this pipeline."""
    return pipeline_manifest("name")


def state(job: Job, active: bool) -> str:
    """A job's state as WES names it (`active`: a worker is staging or running it)."""
    if job.status == LAUNCHING:
        return "INITIALIZING" if active else "QUEUED"
    if job.status == FAILED:  # the service's own failures apart from the workflow's
        return "SYSTEM_ERROR" if job.failure == Failure.SYSTEM else "EXECUTOR_ERROR"
    return {RUNNING: "RUNNING", FINISHED: "COMPLETE", CANCELING: "CANCELING",
            CANCELLED: "CANCELED"}[job.status]


def token(headers) -> str | None:
    """The token of a WES call: `Authorization: Bearer TOKEN`, else `X-Auth-Token`."""
    bearer = re.fullmatch(r"Bearer\s+(\S+)", headers.get("Authorization") or "", re.I)
    return bearer.group(1) if bearer else headers.get("X-Auth-Token")


class Wes:
    """The WES calls on the job API."""

    def __init__(self, jobs: Jobs):
        self.jobs = jobs

    def caller(self, headers) -> Caller | None:
        """Who sent a request, by its token (`token`); None without a valid one."""
        return self.jobs.config.caller(token(headers))

    @staticmethod
    def submission_token(method: str, path: str, headers) -> str | None:
        """The token of a request that submits a run; None for every other request."""
        return token(headers) if method == "POST" and path == RUNS else None

    def handle(self, method: str, path: str, query: str, headers, body: bytes | None
               ) -> tuple[int, dict]:
        """Answer one request: (HTTP status, JSON body); raises ApiError for error answers.
        `body` is the submission's (`submission_token`), None for any other request."""
        try:
            return self._handle(method, path, query, headers, body)
        except NotFound as err:
            raise WesError(404, f"no run {err.instance_id}") from None
        except JobError as err:
            raise WesError(400, str(err)) from None

    def _handle(self, method: str, path: str, query: str, headers, body: bytes | None
                ) -> tuple[int, dict]:
        caller = self._caller(headers)
        if path == f"{PREFIX}/service-info":
            allow(method, "GET")
            return 200, self._service_info(caller)
        if path == RUNS:
            allow(method, "GET", "POST")
            if method == "POST":
                return self._submit(caller, headers, body)
            return 200, self._list(caller, query)
        match = _RUN.fullmatch(path)
        if not match:
            raise WesError(404, "not found")
        job = self.jobs.get(caller.projects, match.group(1))
        if match.group(2) == "/cancel":
            allow(method, "POST")
            try:
                self.jobs.cancel(caller.projects, job.instance_id)
            except Conflict:
                raise WesError(400, f"run {job.instance_id} is {self._state(job)} and cannot "
                               "be cancelled") from None
            return 200, {"run_id": job.instance_id}
        allow(method, "GET")
        if match.group(2) == "/status":
            return 200, {"run_id": job.instance_id, "state": self._state(job)}
        return 200, self._run_log(job)

    def _caller(self, headers) -> Caller:
        caller = self.caller(headers)
        if caller is None:
            raise WesError(401, "a valid token is required: Authorization: Bearer TOKEN, or "
                                "X-Auth-Token")
        return caller

    def _state(self, job: Job) -> str:
        return state(job, self.jobs.active(job.instance_id))

    def _service_info(self, caller: Caller) -> dict:
        counts: dict[str, int] = {}
        for project in sorted(caller.projects):
            for job in self.jobs.list({project}, limit=1 << 30)[1]:
                named = self._state(job)
                counts[named] = counts.get(named, 0) + 1
        version = ".".join(map(str, nextflow.MINIMUM))
        return {
            "id": "org.cnvkit-nf.wes", "name": "cnvkit-nf job service",
            "type": {"group": "org.ga4gh", "artifact": "wes", "version": "1.1.0"},
            "organization": {"name": "cnvkit-nf", "url": "https://github.com/cnvkit-nf"},
            "version": pipeline_manifest("version"),
            "workflow_type_versions": {WORKFLOW_TYPE: {
                "workflow_type_version": [WORKFLOW_TYPE_VERSION]}},
            "supported_wes_versions": ["1.1.0"],
            "supported_filesystem_protocols": ["file", "s3", "s3a", "obs"],
            "workflow_engine_versions": {"nextflow": {"workflow_engine_version": [version]}},
            "default_workflow_engine_parameters": [],
            "system_state_counts": counts,
            "auth_instructions_url": "https://github.com/cnvkit-nf/cnvkit-nf#the-job-service",
            "tags": {"workflow_url": workflow_url()},
        }

    def _submit(self, caller: Caller, headers, body: bytes) -> tuple[int, dict]:
        fields = _form(headers.get("Content-Type") or "", body)
        wanted = {"workflow_type": WORKFLOW_TYPE, "workflow_type_version": WORKFLOW_TYPE_VERSION,
                  "workflow_url": workflow_url()}
        problems = [f"{name} must be {value!r}, got {fields.get(name)!r}"
                    for name, value in wanted.items()
                    if fields.get(name) != value and not (
                        name == "workflow_type_version" and name not in fields)]
        try:
            tags = json.loads(fields.get("tags") or "{}")
        except (ValueError, RecursionError):
            tags = None
        if not isinstance(tags, dict):
            problems.append("tags must be a JSON object")
            tags = {}
        projects = sorted(caller.projects)
        project = tags.get("project") or (projects[0] if len(projects) == 1 else None)
        if not isinstance(project, str) or project not in caller.projects:
            problems.append(f"tags.project must name one of your projects ({', '.join(projects)})")
        if "workflow_params" not in fields:
            problems.append("workflow_params (the request, as JSON) is required")
        if problems:
            raise WesError(400, "; ".join(problems))
        job, _warnings = self.jobs.submit(fields["workflow_params"], project, caller)
        return 200, {"run_id": job.instance_id}

    def _list(self, caller: Caller, query: str) -> dict:
        args = {name: values[-1] for name, values in parse_qs(query).items()}
        size, token = args.get("page_size", "10"), args.get("page_token", "0")
        if not (_COUNT.fullmatch(size) and _COUNT.fullmatch(token)) \
                or not 1 <= int(size) <= MAX_PAGE:
            raise WesError(400, f"page_size must be 1..{MAX_PAGE} and page_token one this "
                                "service gave")
        offset = int(token)
        count, jobs = self.jobs.list(caller.projects, service_only=True, limit=int(size),
                                     offset=offset)
        runs = [_present({"run_id": job.instance_id, "state": self._state(job),
                          "start_time": _iso(job.created), "end_time": _iso(job.end_time),
                          "tags": {"project": job.project}}) for job in jobs]
        more = offset + len(jobs) < count
        return {"runs": runs, "next_page_token": str(offset + len(jobs)) if more else ""}

    def _run_log(self, job: Job) -> dict:
        folder = RunFolder(job.run_dir or "/nonexistent")
        results = folder.results
        try:
            code = int(folder.exit_file.read_text()) if job.run_dir else None
        except (OSError, ValueError):
            code = None
        return {
            "run_id": job.instance_id,
            "request": {"workflow_params": job.request, "workflow_type": WORKFLOW_TYPE,
                        "workflow_type_version": WORKFLOW_TYPE_VERSION,
                        "workflow_url": workflow_url(), "tags": {"project": job.project}},
            "state": self._state(job),
            "run_log": _present({"name": "nextflow run " + workflow_url(),
                                 "start_time": _iso(job.start_time),
                                 "end_time": _iso(job.end_time), "exit_code": code,
                                 "system_logs": [job.message] if job.message else []}),
            "task_logs": _task_logs(results.trace),
            "outputs": _outputs(results.path, job.request["output_dir"]) if job.status == FINISHED
            else {},
        }


def _form(content_type: str, body: bytes) -> dict[str, str]:
    """The fields of a RunWorkflow body: multipart/form-data (as WES says) or a JSON object."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            fields = json.loads(body)
        except ValueError:
            raise WesError(400, "the body is not JSON") from None
        except RecursionError:
            raise WesError(400, "the body is nested too deeply") from None
        if not isinstance(fields, dict):
            raise WesError(400, "the body must be a JSON object")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}
    if not content_type.lower().startswith("multipart/form-data"):
        raise WesError(400, "send the run as multipart/form-data (or application/json)")
    fields = {}
    for head, content in _parts(content_type, body):
        part = _headers(head)
        name = part.get_param("name", header="content-disposition")
        if name == "workflow_attachment":
            raise WesError(400, "workflow_attachment is not taken: the pipeline is this "
                                "service's own")
        if name:
            if part.get_content_maintype() in ("multipart", "message"):
                raise WesError(400, f"{name} must be a plain form field")
            part.set_payload(content.decode("ascii", "surrogateescape"))  # as the parser would
            try:
                fields[name] = part.get_payload(decode=True).decode("utf-8")
            except UnicodeDecodeError:
                raise WesError(400, f"{name} is not UTF-8 text") from None
    return fields


def _parts(content_type: str, body: bytes) -> list[tuple[bytes, bytes]]:
    """(header lines, content) of each part of a multipart body. Parts are found here, not by
    `email.parser`, whose time grows with the square of a header's length: it is given the
    header lines of one part at a time, and at most MAX_HEADS bytes of them in all, so that
    reading a form takes time in proportion to its size."""
    unreadable = "the multipart/form-data body cannot be read"
    budget = MAX_HEADS - len(content_type)
    if budget < 0:
        raise WesError(400, f"the Content-Type header is longer than {MAX_HEADS} bytes")
    boundary = _headers(f"Content-Type: {content_type}".encode("latin-1")).get_boundary()
    if not boundary or not boundary.isascii():
        raise WesError(400, f"{unreadable}: the Content-Type names no boundary")
    # A delimiter line starts a part; with "--" after the boundary it ends the last. (The
    # line break that ends it is not taken: it may begin the next delimiter.)
    delimiter = re.compile(rb"(?:\A|\r?\n)--" + re.escape(boundary.encode())
                           + rb"(--)?[ \t]*(?=(\r?\n)|\Z)")
    parts: list[tuple[bytes, bytes]] = []
    start = None
    for match in delimiter.finditer(body):
        if start is not None:
            part = body[start:match.start()]
            blank = _BLANK_LINE.search(part)
            if blank is None:
                raise WesError(400, f"{unreadable}: part {len(parts) + 1} has no blank line "
                                    "after its header lines")
            budget -= blank.start()
            if budget < 0:
                raise WesError(400, f"the form's header lines (of all parts, with the "
                                    f"Content-Type) are longer than {MAX_HEADS} bytes")
            parts.append((part[:blank.start()], part[blank.end():]))
        if match.group(1):
            return parts
        if len(parts) == MAX_PARTS:
            raise WesError(400, f"the form has more than {MAX_PARTS} parts; a RunWorkflow form "
                                "has 9 fields")
        start = match.end() + len(match.group(2) or b"")
    raise WesError(400, f"{unreadable}: it does not end with the closing boundary "
                        f"--{boundary}--")


def _headers(lines: bytes) -> email.message.EmailMessage:
    """Header lines (a few KiB at most: see `_parts`), parsed as HTTP's."""
    return email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        lines + b"\r\n\r\n", headersonly=True)


def _iso(ms: int | None) -> str | None:
    return None if ms is None else \
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _task_logs(trace: Path) -> list[dict]:
    """One TaskLog per task of Nextflow's trace."""
    return [_present({
        "id": row["task_id"], "name": row["name"], "start_time": row.get("start") or None,
        "end_time": row.get("complete") or None,
        "exit_code": int(row["exit"]) if row.get("exit", "").lstrip("-").isdigit() else None,
        "system_logs": [f"{row.get('status')} {row.get('native_id', '')}".strip()]})
        for row in trace_rows(trace)]


def _present(fields: dict) -> dict:
    """The fields that have a value (WES types them as strings or integers, never null)."""
    return {key: value for key, value in fields.items() if value is not None}


def _outputs(results: Path, output_dir: str) -> dict:
    """The manifest's files, where they were published."""
    try:
        listed = json.loads((results / manifest.NAME).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return {}
    where = output_dir.rstrip("/")
    return {"manifest": f"{where}/{manifest.NAME}",
            "files": {item["path"]: f"{where}/{item['path']}" for item in listed}}
