"""`cnvkit-nf serve`: the seed's REST API (its HTTP transport: `http_server`).

    POST   /v2.0/{project_id}/gene/tools/cnvkit                 submit a request -> 201 instance_id
    GET    /v2.0/{project_id}/gene/tools/cnvkit?instance-id=&limit=&offset=&start=&end=
    DELETE /v2.0/{project_id}/gene/tools/cnvkit/{instance_id}   cancel
    POST   /v2.0/{project_id}/gene/tools/cnvkit/{instance_id}/retry   run a FAILED or CANCELLED
                                                                 job again (extension)
    GET    /v2.0/{project_id}/gene/tools/cnvkit/{instance_id}/log     its log and failure in
                                                                 full (extension)
    GET    /health, /openapi.json

Errors follow the service family: `{"error_code": "DLI.xxxx", "error_msg": "..."}`. Request
handling never waits on a job: jobs run in the worker pool. The transport (`http_server`) reads
a body only for a submission by a valid token (`submission_token`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from cnvkit_nf.contract.problems import Problem, errors, format_problem, summary
from cnvkit_nf.contract.request import validate_text
from cnvkit_nf.launch import local_files
from cnvkit_nf.launch.runner import job_log
from cnvkit_nf.launch.submission import occupied, plan
from cnvkit_nf.service import openapi
from cnvkit_nf.service.config import PROJECT_ID, Caller, ServiceConfig
from cnvkit_nf.service.workers import RUNNER, WorkerPool
from cnvkit_nf.state.jobs import (
    CANCELLED,
    FAILED,
    LAUNCHING,
    IllegalTransition,
    Job,
    JobStore,
    Occupied,
)

_JOBS = re.compile(r"/v2\.0/([^/]+)/gene/tools/cnvkit/?")
_JOB = re.compile(r"/v2\.0/([^/]+)/gene/tools/cnvkit/([^/]+)")
_JOB_ACTION = re.compile(r"/v2\.0/([^/]+)/gene/tools/cnvkit/([^/]+)/(retry|log)")
WES_PREFIX = "/ga4gh/wes/"
_QUERY = {"instance-id", "limit", "offset", "start", "end"}


class ApiError(Exception):
    """An error answer: HTTP status, DLI code and message."""

    def __init__(self, status: int, code: str, message: str, problems: list[Problem] = (),
                 allow: tuple[str, ...] = ()):
        super().__init__(message)
        self.status, self.code, self.problems = status, code, list(problems)
        self.allow = allow  # the methods a 405 answer names

    @property
    def body(self) -> dict:
        body = {"error_code": self.code, "error_msg": str(self)}
        if self.problems:
            body["problems"] = [p.__dict__ for p in self.problems]
        return body


def _invalid(problems: list[Problem]) -> ApiError:
    message = summary(problems)
    return ApiError(400, "DLI.0001", message, problems)


NOT_FOUND = ("DLI.0023", "resource not found")


def error_answer(target: str, err: ApiError) -> tuple[int, dict]:
    """An error answer in the form of the face (seed API or WES) that `target` addresses."""
    if urlsplit(target).path.startswith(WES_PREFIX):
        from cnvkit_nf.service import wes  # the WES face builds on this module

        return err.status, wes.WesError(err.status, str(err), allow=err.allow).body
    return err.status, err.body


def internal_error(target: str) -> tuple[int, dict]:
    """The answer to a request the service failed on, in the form of its face."""
    return error_answer(target, ApiError(500, "DLI.0999", "internal server error"))


@dataclass
class App:
    """The API's logic, independent of the HTTP server that carries it."""

    store: JobStore
    pool: WorkerPool
    config: ServiceConfig
    storage_config: str | None

    def caller_of(self, target: str, headers) -> Caller | None:
        """Who sent a request, by the token its face takes; None without a valid token."""
        if urlsplit(target).path.startswith(WES_PREFIX):
            from cnvkit_nf.service import wes  # the WES face builds on this module

            return self.config.caller(wes.token(headers))
        return self.config.caller(headers.get("X-Auth-Token"))

    def submission_token(self, method: str, target: str, headers) -> str | None:
        """The token of a request that submits a job (its body is a request to check); None
        for every other request. The transport reads the body only of a submission whose
        token is valid (`caller_of`)."""
        path = urlsplit(target).path
        if method != "POST":
            return None
        if path.startswith(WES_PREFIX):
            from cnvkit_nf.service import wes  # the WES face builds on this module

            return wes.token(headers) if path == wes.RUNS else None
        return headers.get("X-Auth-Token") if _JOBS.fullmatch(path) else None

    def handle(self, method: str, target: str, headers, body: bytes | None
               ) -> tuple[int, dict]:
        """Answer one request: (HTTP status, JSON body); raises ApiError for error answers.
        `body` is the submission's (`submission_token`), None for any other request."""
        url = urlsplit(target)
        if url.path.startswith(WES_PREFIX):
            from cnvkit_nf.service import wes  # the WES face builds on this module

            return wes.Wes(self).handle(method, url.path, url.query, headers, body)
        if url.path == "/health":
            self.allow(method, "GET")
            return 200, {"status": "ok", "running": self.pool.running,
                         "queued": self.store.count(RUNNER, LAUNCHING),
                         "workers": self.pool.workers}
        if url.path == "/openapi.json":
            self.allow(method, "GET")
            return 200, openapi.document()
        jobs, job = _JOBS.fullmatch(url.path), _JOB.fullmatch(url.path)
        action = _JOB_ACTION.fullmatch(url.path)
        if not (jobs or job or action):
            raise ApiError(404, *NOT_FOUND)
        project = (jobs or job or action).group(1)
        caller = self._caller(headers, project)
        if jobs:
            self.allow(method, "GET", "POST")
            if method == "POST":
                return self._submit(project, caller, body)
            return self._query(project, url.query)
        if action and action.group(3) == "retry":
            self.allow(method, "POST")
            return self._retry(project, action.group(2))
        if action:
            self.allow(method, "GET")
            return 200, job_log(self._own_job(project, action.group(2)))
        self.allow(method, "DELETE")
        return self._cancel(project, job.group(2))

    @staticmethod
    def allow(method: str, *allowed: str) -> None:
        if method not in allowed:
            raise ApiError(405, "DLI.0007", f"{method} is not supported here; use "
                           f"{' or '.join(allowed)}", allow=allowed)

    def _caller(self, headers, project: str) -> Caller:
        caller = self.config.caller(headers.get("X-Auth-Token"))
        if caller is None:
            raise ApiError(401, "DLI.0013", "user authentication failed: a valid X-Auth-Token "
                           "header is required")
        if not PROJECT_ID.fullmatch(project) or project not in caller.projects:
            raise ApiError(404, *NOT_FOUND)
        return caller

    def _submit(self, project: str, caller: Caller, body: bytes) -> tuple[int, dict]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid([Problem("", "the body is not UTF-8 text")]) from None
        job, warnings = self.accept(text, project, caller)
        return 201, {"instance_id": job.instance_id, **({"warnings": warnings} if warnings else {})}

    def accept(self, text: str, project: str, caller: Caller) -> tuple[Job, list[str]]:
        """Check a request (JSON text) as `cnvkit-nf run` does, plus the service's rules, and
        queue it as a job of `project`; the job and the warnings. ApiError when refused."""
        validation = validate_text(text)
        problems, request = validation.problems, validation.request
        roots = self.config.roots(project)
        if request is not None:
            problems = problems + self.config.request_problems(request, project)
        if errors(problems):  # the paths too (but never more of them than the limit allows)
            if request is not None and not self.config.limit_problems(request):
                problems = problems + local_files.path_problems(request, roots)
            raise _invalid(errors(problems))
        self._queue_limit()
        job_plan, checked = plan(request, self.storage_config, roots,
                                 limits=self.config.check_limits())
        if errors(checked):
            raise _invalid(errors(checked))
        try:
            job = self.pool.submit(job_plan, project, caller.owner)
        except Occupied as err:
            raise _invalid([occupied(err)]) from None
        return job, [format_problem(p) for p in problems + checked if p.severity == "warning"]

    def _query(self, project: str, query: str) -> tuple[int, dict]:
        args = parse_qs(query, keep_blank_values=True)
        problems = [Problem(name, f"unknown query parameter; use {', '.join(sorted(_QUERY))}")
                    for name in args if name not in _QUERY]
        problems += [Problem(name, "given more than once") for name, v in args.items()
                     if len(v) > 1]
        value = {name: values[0] for name, values in args.items()}
        limit = _integer(value, "limit", 10, 1, 100, problems)
        offset = _integer(value, "offset", 0, 0, None, problems)
        start = _integer(value, "start", None, 0, None, problems)
        end = _integer(value, "end", None, 0, None, problems)
        if problems:
            raise _invalid(problems)
        instance_id = value.get("instance-id") or None
        count, jobs = self.store.list(project, instance_id=instance_id, start=start, end=end,
                                      limit=limit, offset=offset)
        if instance_id and not count:
            raise ApiError(404, *NOT_FOUND)
        return 200, {"count": count, "instances": [job.instance() for job in jobs]}

    def _queue_limit(self) -> None:
        if self.store.count(RUNNER, LAUNCHING) >= self.config.limits["max_queued"]:
            raise ApiError(400, "DLI.0009", "system limit reached: "
                           f"{self.config.limits['max_queued']} jobs are already waiting")

    def _own_job(self, project: str, instance_id: str) -> Job:
        """A job of this service and project; any other id is not found."""
        job = self.store.get(instance_id)
        if job is None or job.project != project or job.runner != RUNNER:
            raise ApiError(404, *NOT_FOUND)
        return job

    def _retry(self, project: str, instance_id: str) -> tuple[int, dict]:
        job = self._own_job(project, instance_id)
        if job.status not in (FAILED, CANCELLED):
            raise ApiError(400, "DLI.0007", f"operation not supported: job {instance_id} is "
                           f"{job.status}; only a FAILED or CANCELLED job can be retried")
        self._queue_limit()
        try:
            job = self.pool.retry(instance_id)
        except IllegalTransition:  # it was retried meanwhile
            raise ApiError(400, "DLI.0007", f"operation not supported: job {instance_id} is "
                           "already being retried") from None
        except Occupied as err:
            raise _invalid([occupied(err)]) from None
        return 200, {"instance_id": instance_id, "status": job.status}

    def _cancel(self, project: str, instance_id: str) -> tuple[int, dict]:
        job = self._own_job(project, instance_id)
        if job.final or self.pool.cancel(instance_id) is None:
            current = self.store.get(instance_id)
            raise ApiError(400, "DLI.0007", f"operation not supported: job {instance_id} is "
                           f"{current.status} and cannot be cancelled")
        return 200, {}


def _integer(values: dict, name: str, default, low: int, high: int | None,
             problems: list[Problem]):
    text = values.get(name)
    if not text:
        return default
    bounds = f"from {low} to {high}" if high is not None else f"of {low} or more"
    if not re.fullmatch(r"\d{1,18}", text) or int(text) < low or (high and int(text) > high):
        problems.append(Problem(name, f"{text!r} is not an integer {bounds}"))
        return default
    return int(text)
