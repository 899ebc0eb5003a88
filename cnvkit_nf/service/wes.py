"""A GA4GH WES 1.1 face over the job service's jobs, under `/ga4gh/wes/v1`.

A run is a job: `workflow_params` is the seed request, `workflow_type` NFL (DSL2), and
`workflow_url` names this pipeline (`workflow_problem` says how). The same tokens and projects
apply as on the seed API (`Authorization: Bearer TOKEN` or `X-Auth-Token`); a run's project is
its `tags.project`, which may be left out by a token of one project. Another project's runs are
answered 404, as runs that do not exist. Only service-info answers without a token (no counts).

Beyond the WES calls, a run's and its tasks' output is served as text under the run's URL
(`/stdout`, `/stderr`, `/tasks/{id}/stdout`, `/tasks/{id}/stderr`; the last `TAIL_BYTES`), by
the same rules: the RunLog and TaskLogs link them where the file exists.

It is one of the job service's two faces over its job API (`job_api`), and answers every target
under `ROOT` (`app` routes them). Errors take WES's form: `{"msg", "status_code"}`; a text
answer is a `str` body.
"""

from __future__ import annotations

import base64
import binascii
import email.message
import email.parser
import email.policy
import functools
import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, quote, urlsplit

from cnvkit_nf.contract.pipeline_schema import manifest as pipeline_manifest
from cnvkit_nf.launch import nextflow
from cnvkit_nf.launch.runner import (
    LOG_TAIL_BYTES,
    TASK_FOLDER,
    read_tail,
    trace_rows,
    work_dir,
)
from cnvkit_nf.pipeline_files import PIPELINE
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
from cnvkit_nf.storage import confined, manifest

ROOT = "/ga4gh/wes/"  # every target under it is WES's
PREFIX = f"{ROOT}v1"
RUNS = f"{PREFIX}/runs"
WORKFLOW_TYPE, WORKFLOW_TYPE_VERSION = "NFL", "DSL2"
_RUN = re.compile(rf"{RUNS}/(?P<run>[^/]+)(?:/(?P<action>status|cancel|stdout|stderr|tasks)"
                  r"|/tasks/(?P<task>[^/]+)(?:/(?P<stream>stdout|stderr))?)?")
MAX_PAGE = 100
_COUNT = re.compile(r"[0-9]{1,18}")  # ASCII digits (str.isdigit takes "²"), SQLite's 64 bits
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# A RunWorkflow form has 9 fields, each with a header line or two: a form of more parts, or
# with more header bytes in all, is refused (see `_parts`).
MAX_PARTS, MAX_HEADS = 64, 4 << 10
_BLANK_LINE = re.compile(rb"(?:\A|\r?\n)\r?\n")  # ends a part's header lines (maybe none)
# workflow_attachment parts: only the pipeline's own main script is taken (compared in memory,
# never written), so a few, each no larger than a script could be.
MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES = 4, 256 << 10
TAIL_BYTES = LOG_TAIL_BYTES  # of a log served as text: its end
# The files a run's output URLs serve, in its run folder: Nextflow's console output (its
# stdout and stderr as one stream) and Nextflow's own log; a task's, in its work folder.
RUN_STREAMS = {"stdout": RunFolder(Path()).nextflow_log.name,
               "stderr": RunFolder(Path()).nextflow_own_log.name}
TASK_STREAMS = {"stdout": ".command.out", "stderr": ".command.err"}
_HOST = re.compile(r"(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?")


class WesError(ApiError):
    """An error answer of WES's own (it has no code of the service family's)."""

    def __init__(self, status: int, message: str):
        super().__init__(status, "", message)


def error_body(err: ApiError) -> dict:
    """An error answer's body in WES's form."""
    return {"msg": str(err), "status_code": err.status}


def workflow_url() -> str:
    """This pipeline's name (`manifest.name`), the canonical `workflow_url`."""
    return pipeline_manifest("name")


@functools.cache
def _main_script() -> tuple[str, bytes]:
    """The pipeline's main script: its name (`manifest.mainScript`) and bytes."""
    name = pipeline_manifest("mainScript")
    return name, (PIPELINE / name).read_bytes()


def _repository() -> re.Pattern:
    """The absolute URLs taken for this pipeline: its repository, as Nextflow resolves its
    name (https://github.com/NAME), with `.git`, `/`, `/tree/VERSION`, `/blob/VERSION/MAIN`
    or `#MAIN` after it (VERSION: this one's, with or without a `v`)."""
    main = re.escape(_main_script()[0])
    return re.compile(rf"https?://github\.com/{re.escape(workflow_url())}(?:\.git)?"
                      rf"(?:/tree/(?P<tree>[^/#?]+)|/blob/(?P<blob>[^/#?]+)/{main})?/?"
                      rf"(?:#{main})?", re.I)


def accepted_urls() -> str:
    """The forms of `workflow_url` this service takes, as its refusals say them."""
    name, version, main = workflow_url(), pipeline_manifest("version"), _main_script()[0]
    return (f"workflow_url must name this service's pipeline: its name {name!r}; its "
            f"repository https://github.com/{name} (.git, /, /tree/{version}, "
            f"/blob/{version}/{main} or #{main} may follow, v{version} too); or a relative "
            f"URL naming a workflow_attachment whose bytes are its {main}")


def workflow_problem(url: str | None, attachments: dict[str, bytes]) -> str | None:
    """Why a RunWorkflow's `workflow_url` (with its attachments, by file name) does not name
    this service's pipeline; None when it does. Only the attachment it names may be sent."""
    others = sorted(set(attachments) - {_relative(url)})
    if others:
        return (f"workflow_attachment {others[0]!r} is not taken: only the workflow itself "
                f"may be attached (inputs are read from the data roots)")
    if not url:
        return f"workflow_url is required; {accepted_urls()}"
    if url == workflow_url():
        return None
    found = _repository().fullmatch(url)
    if found:
        ref, version = found.group("tree") or found.group("blob"), pipeline_manifest("version")
        if ref is None or ref in (version, f"v{version}"):
            return None
        return f"workflow_url names version {ref!r}; this service runs {version} only"
    relative = _relative(url)
    if relative is None:
        return f"{accepted_urls()}; got {url!r}"
    if relative not in attachments:
        return (f"workflow_url {url!r} names no workflow_attachment (attached: "
                f"{', '.join(map(repr, sorted(attachments))) or 'none'}); {accepted_urls()}")
    if attachments[relative] != _main_script()[1]:
        return (f"workflow_attachment {relative!r} is not this service's pipeline: its bytes "
                f"differ from {_main_script()[0]} (version {pipeline_manifest('version')})")
    return None


def _relative(url: str | None) -> str | None:
    """A relative URL's path (`./` dropped), as attachments are named; None for any other."""
    if not url or urlsplit(url).scheme or url.startswith("/") or "?" in url or "#" in url:
        return None
    return url.removeprefix("./")


def attachment_name(name: str | None) -> str:
    """A workflow_attachment's file name, checked: relative, no `..`, printable, short."""
    if not name:
        raise WesError(400, "a workflow_attachment part has no filename")
    parts = PurePosixPath(name).parts
    if (name.startswith("/") or ".." in parts or not name.isprintable() or "\\" in name
            or len(name.encode()) > 255):
        raise WesError(400, f"workflow_attachment file name {name[:100]!r} is refused: a "
                            "relative path of printable characters, at most 255 bytes, "
                            "without '..'")
    return name.removeprefix("./")


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


def page_token(kind: str, *key: object) -> str:
    """An opaque page token: where a page ended (`kind` and the key of its last item)."""
    text = ":".join(map(str, (kind, *key)))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _page_key(text: str, kind: str, key: re.Pattern) -> tuple[str, ...]:
    """The key a page token of `kind` holds (`page_token`), matched by `key` in full; a token
    this service could not have given is refused."""
    refused = WesError(400, f"page_token {text[:40]!r} is not one this service gave")
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,200}", text):
        raise refused
    try:
        decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise refused from None
    found = key.fullmatch(decoded.removeprefix(f"{kind}:")) \
        if decoded.startswith(f"{kind}:") else None
    if found is None or page_token(kind, *found.groups()) != text:
        raise refused
    return found.groups()


def _page_size(args: dict[str, str]) -> int:
    size = args.get("page_size", "10")
    if not _COUNT.fullmatch(size) or not 1 <= int(size) <= MAX_PAGE:
        raise WesError(400, f"page_size must be 1..{MAX_PAGE}")
    return int(size)


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
               ) -> tuple[int, dict | str]:
        """Answer one request: (HTTP status, JSON body, or a `str` of text); raises ApiError
        for error answers. `body` is the submission's (`submission_token`), None for any
        other request."""
        try:
            return self._handle(method, path, query, headers, body)
        except NotFound as err:
            raise WesError(404, f"no run {err.instance_id}") from None
        except JobError as err:
            raise WesError(400, str(err)) from None

    def _handle(self, method: str, path: str, query: str, headers, body: bytes | None
                ) -> tuple[int, dict | str]:
        if path == f"{PREFIX}/service-info":
            allow(method, "GET")  # without a token too: then no counts
            return 200, self._service_info(self._caller(headers) if token(headers) else None)
        caller = self._caller(headers)
        if path == RUNS:
            allow(method, "GET", "POST")
            if method == "POST":
                return self._submit(caller, headers, body)
            return 200, self._list(caller, query)
        match = _RUN.fullmatch(path)
        if not match:
            raise WesError(404, "not found")
        job = self.jobs.get(caller.projects, match["run"])
        action = match["action"]
        if action == "cancel":
            allow(method, "POST")
            try:
                self.jobs.cancel(caller.projects, job.instance_id)
            except Conflict:
                raise WesError(400, f"run {job.instance_id} is {self._state(job)} and cannot "
                               "be cancelled") from None
            return 200, {"run_id": job.instance_id}
        allow(method, "GET")
        links = _Links(headers, job.instance_id)
        if action == "status":
            return 200, {"run_id": job.instance_id, "state": self._state(job)}
        if action in RUN_STREAMS:
            return 200, self._text(job, lambda: _run_file(job, action))
        if action == "tasks":
            return 200, self._tasks(job, query, links)
        if match["task"] is None:
            return 200, self._run_log(job, links)
        row = _task_row(job, match["task"])
        if match["stream"]:
            return 200, self._text(job, lambda: self._task_file(job, row, match["stream"]))
        return 200, self._task_log(job, row, links)

    def _caller(self, headers) -> Caller:
        caller = self.caller(headers)
        if caller is None:
            raise WesError(401, "a valid token is required: Authorization: Bearer TOKEN, or "
                                "X-Auth-Token")
        return caller

    def _state(self, job: Job) -> str:
        return state(job, self.jobs.active(job.instance_id))

    def _service_info(self, caller: Caller | None) -> dict:
        """The service; the caller's runs counted by state (none without a caller)."""
        counts: dict[str, int] = {}
        for project in sorted(caller.projects if caller else ()):
            for job in self.jobs.list({project}, service_only=True, limit=1 << 30)[1]:
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
        fields, attachments = _form(headers.get("Content-Type") or "", body)
        problems = [f"{name} must be {value!r}, got {fields.get(name)!r}"
                    for name, value in (("workflow_type", WORKFLOW_TYPE),
                                        ("workflow_type_version", WORKFLOW_TYPE_VERSION))
                    if fields.get(name) != value and not (
                        name == "workflow_type_version" and name not in fields)]
        problems += filter(None, [workflow_problem(fields.get("workflow_url"), attachments)])
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
        """A page of the caller's runs, newest first; its token is where it ended, so that
        runs submitted meanwhile neither repeat nor push any out of the next page."""
        args = {name: values[-1] for name, values in parse_qs(query).items()}
        size = _page_size(args)
        after = None
        if args.get("page_token"):
            created, run_id = _page_key(args["page_token"], "runs",
                                        re.compile(rf"({_COUNT.pattern}):({_UUID.pattern})"))
            after = int(created), run_id
        _, jobs = self.jobs.list(caller.projects, service_only=True, limit=size + 1,
                                 after=after)
        page = jobs[:size]
        runs = [_present({"run_id": job.instance_id, "state": self._state(job),
                          "start_time": iso_time(job.created),
                          "end_time": iso_time(job.end_time),
                          "tags": {"project": job.project}}) for job in page]
        last = page[-1] if len(jobs) > size else None
        return {"runs": runs,
                "next_page_token": page_token("runs", last.created, last.instance_id)
                if last else ""}

    def _run_log(self, job: Job, links: _Links) -> dict:
        folder = RunFolder(job.run_dir or "/nonexistent")
        try:
            code = int(folder.exit_file.read_text()) if job.run_dir else None
        except (OSError, ValueError):
            code = None
        streams = {name: links.url(name) for name in RUN_STREAMS
                   if _readable(lambda name=name: _run_file(job, name))}
        return {
            "run_id": job.instance_id,
            "request": {"workflow_params": job.request, "workflow_type": WORKFLOW_TYPE,
                        "workflow_type_version": WORKFLOW_TYPE_VERSION,
                        "workflow_url": workflow_url(), "tags": {"project": job.project}},
            "state": self._state(job),
            "run_log": _present({"name": "nextflow run " + workflow_url(),
                                 "start_time": iso_time(job.start_time),
                                 "end_time": iso_time(job.end_time), "exit_code": code,
                                 **streams,
                                 "system_logs": [job.message] * bool(job.message) + job.warnings}),
            "task_logs_url": links.url("tasks"),
            "task_logs": [self._task_log(job, row, links) for row in _trace(job)],
            "outputs": _outputs(folder.results.path, job.request["output_dir"])
            if job.status == FINISHED else {},
        }

    def _tasks(self, job: Job, query: str, links: _Links) -> dict:
        """A page of a run's tasks, in the RunLog's order (by task id)."""
        args = {name: values[-1] for name, values in parse_qs(query).items()}
        size = _page_size(args)
        rows = _trace(job)
        if args.get("page_token"):
            after = int(_page_key(args["page_token"], "tasks", re.compile(r"([0-9]{1,18})"))[0])
            rows = [row for row in rows if int(row["task_id"]) > after]
        page = rows[:size]
        return {"task_logs": [self._task_log(job, row, links) for row in page],
                "next_page_token": page_token("tasks", page[-1]["task_id"])
                if len(rows) > size else ""}

    def _task_log(self, job: Job, row: dict, links: _Links) -> dict:
        """One task's TaskLog, from its trace row."""
        task = row["task_id"]
        streams = {name: links.url(f"tasks/{task}/{name}") for name in TASK_STREAMS
                   if _readable(lambda name=name: self._task_file(job, row, name))}
        return _present({
            "id": task, "name": row["name"],
            "start_time": iso_time(_trace_ms(row.get("start"))),
            "end_time": iso_time(_trace_ms(row.get("complete"))),
            "exit_code": int(row["exit"]) if re.fullmatch(r"-?[0-9]{1,9}", row.get("exit", ""))
            else None, **streams,
            "system_logs": [f"{row.get('status')} {row.get('native_id', '')}".strip()]})

    def _task_file(self, job: Job, row: dict, stream: str) -> int:
        """A descriptor of a task's output file, in its folder of the run's work dir, reached
        without a link; Refused when there is none."""
        root = work_dir(self.jobs.pool.options, RunFolder(job.run_dir)).path
        workdir = Path(row.get("workdir") or "/")
        name = "/".join(workdir.parts[-2:])
        if not TASK_FOLDER.fullmatch(name) or \
                str(workdir.parent.parent) not in (str(root), os.path.realpath(root)):
            raise confined.Refused(f"task {row['task_id']} has no work folder in the run's")
        with confined.opened(confined.open_folder(str(root), (root,))) as top, \
                confined.opened(confined.existing_subfolder(top, workdir.parent.name)) as ab, \
                confined.opened(confined.existing_subfolder(ab, workdir.name)) as folder:
            return confined.file_in(folder, TASK_STREAMS[stream])

    @staticmethod
    def _text(job: Job, opener: Callable[[], int]) -> str:
        """The end of an output file (`TAIL_BYTES`), as text; a first line says when it is
        cut. 404 when it is not there (not yet, or no longer)."""
        try:
            fd = opener()
        except (confined.Refused, OSError):
            raise WesError(404, f"run {job.instance_id} has no such output (yet)") from None
        text, size = read_tail(fd, TAIL_BYTES)
        return (f"[the last {TAIL_BYTES} bytes of {size}]\n" if size > TAIL_BYTES else "") + text


class _Links:
    """The URLs of a run's parts, absolute from the request's Host (a path when it has none
    that is a host name or address and port); https when the request came by TLS, or a proxy
    said X-Forwarded-Proto: https."""

    def __init__(self, headers, run_id: str):
        host = headers.get("Host") or ""
        tls = getattr(headers, "scheme", "http") == "https"
        scheme = "https" if tls or (headers.get("X-Forwarded-Proto") or "").lower() == "https" \
            else "http"
        self.base = (f"{scheme}://{host}" if _HOST.fullmatch(host) else "") \
            + f"{RUNS}/{quote(run_id, safe='')}"

    def url(self, part: str) -> str:
        return f"{self.base}/{part}"


def _run_file(job: Job, stream: str) -> int:
    """A descriptor of a run's output file (`RUN_STREAMS`) in its run folder, reached without
    a link; Refused when there is none."""
    if not job.run_dir:
        raise confined.Missing("no run folder")
    folder = Path(job.run_dir)
    with confined.opened(confined.open_folder(str(folder), (folder,))) as top:
        return confined.file_in(top, RUN_STREAMS[stream])


def _readable(opener: Callable[[], int]) -> bool:
    """Whether an output file can be served now."""
    try:
        os.close(opener())
        return True
    except (confined.Refused, OSError):
        return False


def _trace(job: Job) -> list[dict]:
    """A run's tasks, from Nextflow's trace, by task id."""
    rows = trace_rows(RunFolder(job.run_dir).results.trace) if job.run_dir else []
    return sorted((row for row in rows if _COUNT.fullmatch(row.get("task_id") or "")),
                  key=lambda row: int(row["task_id"]))


def _task_row(job: Job, task_id: str) -> dict:
    for row in _trace(job):
        if row["task_id"] == task_id:
            return row
    raise WesError(404, f"no task {task_id} in run {job.instance_id}")


def _form(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, bytes]]:
    """The fields of a RunWorkflow body, multipart/form-data (as WES says) or a JSON object,
    and its workflow_attachment files (by checked name: `attachment_name`), kept in memory."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        try:
            fields = json.loads(body)
        except ValueError:
            raise WesError(400, "the body is not JSON") from None
        except RecursionError:
            raise WesError(400, "the body is nested too deeply") from None
        if not isinstance(fields, dict):
            raise WesError(400, "the body must be a JSON object")
        if "workflow_attachment" in fields:
            raise WesError(400, "send workflow_attachment as files of a multipart/form-data "
                                "body")
        return {k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}, {}
    if not content_type.lower().startswith("multipart/form-data"):
        raise WesError(400, "send the run as multipart/form-data (or application/json)")
    fields, attachments = {}, {}
    for head, content in _parts(content_type, body):
        part = _headers(head)
        name = part.get_param("name", header="content-disposition")
        if name:
            if part.get_content_maintype() in ("multipart", "message"):
                raise WesError(400, f"{name} must be a plain form field")
            part.set_payload(content.decode("ascii", "surrogateescape"))  # as the parser would
            value = part.get_payload(decode=True)
            if name == "workflow_attachment":
                attachments[_attachment(part, value, len(attachments))] = value
                continue
            try:
                fields[name] = value.decode("utf-8")
            except UnicodeDecodeError:
                raise WesError(400, f"{name} is not UTF-8 text") from None
    return fields, attachments


def _attachment(part: email.message.EmailMessage, content: bytes, earlier: int) -> str:
    """A workflow_attachment part's checked name, within the limits of count and size."""
    name = attachment_name(part.get_filename())
    if earlier >= MAX_ATTACHMENTS:
        raise WesError(400, f"more than {MAX_ATTACHMENTS} workflow_attachment files")
    if len(content) > MAX_ATTACHMENT_BYTES:
        raise WesError(400, f"workflow_attachment {name!r} has {len(content)} bytes; at most "
                            f"{MAX_ATTACHMENT_BYTES} are taken")
    return name


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


def iso_time(ms: int | None) -> str | None:
    """A time (Unix ms) as WES writes times: ISO 8601, UTC, "%Y-%m-%dT%H:%M:%SZ"."""
    return None if ms is None else \
        datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _trace_ms(text: str | None) -> int | None:
    """A time of Nextflow's trace ("2024-05-01 13:02:03.456", the machine's local time), in
    Unix ms; None for "-" or none."""
    try:
        return int(datetime.strptime(text or "", "%Y-%m-%d %H:%M:%S.%f").timestamp() * 1000)
    except ValueError:
        return None


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
