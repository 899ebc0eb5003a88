"""The seed's REST API, one of the job service's two faces over its job API (`job_api`):

    POST   /v2.0/{project_id}/gene/tools/cnvkit                 submit a request -> 201 instance_id
    GET    /v2.0/{project_id}/gene/tools/cnvkit?instance-id=&limit=&offset=&start=&end=
    DELETE /v2.0/{project_id}/gene/tools/cnvkit/{instance_id}   cancel
    DELETE /v2.0/{project_id}/gene/jobs/{job_id}                 cancel (the family's path)
    POST   /v2.0/{project_id}/gene/tools/cnvkit/{instance_id}/retry   run a FAILED or CANCELLED
                                                                 job again (extension)
    GET    /v2.0/{project_id}/gene/tools/cnvkit/{instance_id}/log     its log and failure in
                                                                 full (extension)
    GET    /health, /openapi.json

It answers every target outside WES's (`app` routes them). Errors follow the service family:
`{"error_code": "DLI.xxxx", "error_msg": "..."}`. The transport (`http_server`) reads a body
only for a submission by a valid token (`submission_token`).
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from cnvkit_nf.contract.problems import Problem
from cnvkit_nf.service import openapi
from cnvkit_nf.service.api_error import ApiError, allow
from cnvkit_nf.service.config import PROJECT_ID, Caller
from cnvkit_nf.service.job_api import Busy, Conflict, Invalid, JobError, Jobs, NotFound

_JOBS = re.compile(r"/v2\.0/([^/]+)/gene/tools/cnvkit/?")
_JOB = re.compile(r"/v2\.0/([^/]+)/gene/tools/cnvkit/([^/]+)")
_JOB_ACTION = re.compile(r"/v2\.0/([^/]+)/gene/tools/cnvkit/([^/]+)/(retry|log)")
_GENE_JOB = re.compile(r"/v2\.0/([^/]+)/gene/jobs/([^/]+)")  # the family's cancel
_QUERY = {"instance-id", "limit", "offset", "start", "end"}
NOT_FOUND = ("DLI.0023", "resource not found")
# the family's code of each refusal of the job API (a job not found: NOT_FOUND)
_CODES = {Invalid: "DLI.0001", Busy: "DLI.0009", Conflict: "DLI.0007"}


def error_body(err: ApiError) -> dict:
    """An error answer's body in the family's form."""
    body = {"error_code": err.code, "error_msg": str(err)}
    if err.problems:
        body["problems"] = [p.__dict__ for p in err.problems]
    return body


class SeedApi:
    """The seed's calls on the job API."""

    def __init__(self, jobs: Jobs):
        self.jobs = jobs

    def caller(self, headers) -> Caller | None:
        """Who sent a request, by its X-Auth-Token; None without a valid one."""
        return self.jobs.config.caller(headers.get("X-Auth-Token"))

    @staticmethod
    def submission_token(method: str, path: str, headers) -> str | None:
        """The token of a request that submits a job; None for every other request."""
        return headers.get("X-Auth-Token") if method == "POST" and _JOBS.fullmatch(path) \
            else None

    def handle(self, method: str, path: str, query: str, headers, body: bytes | None
               ) -> tuple[int, dict]:
        """Answer one request: (HTTP status, JSON body); raises ApiError for error answers.
        `body` is the submission's (`submission_token`), None for any other request."""
        try:
            return self._handle(method, path, query, headers, body)
        except NotFound:
            raise ApiError(404, *NOT_FOUND) from None
        except JobError as err:
            raise ApiError(400, _CODES[type(err)], str(err),
                           err.problems if isinstance(err, Invalid) else ()) from None

    def _handle(self, method: str, path: str, query: str, headers, body: bytes | None
                ) -> tuple[int, dict]:
        if path == "/health":
            allow(method, "GET")
            return 200, {"status": "ok", **self.jobs.load()}
        if path == "/openapi.json":
            allow(method, "GET")
            return 200, openapi.document()
        jobs, job = _JOBS.fullmatch(path), _JOB.fullmatch(path) or _GENE_JOB.fullmatch(path)
        action = _JOB_ACTION.fullmatch(path)
        if not (jobs or job or action):
            raise ApiError(404, *NOT_FOUND)
        project = (jobs or job or action).group(1)
        caller = self._caller(headers, project)
        if jobs:
            allow(method, "GET", "POST")
            if method == "POST":
                return self._submit(project, caller, body)
            return self._query(project, query)
        if action and action.group(3) == "retry":
            allow(method, "POST")
            retried = self.jobs.retry({project}, action.group(2))
            return 200, {"instance_id": retried.instance_id, "status": retried.status}
        if action:
            allow(method, "GET")
            return 200, self.jobs.log({project}, action.group(2))
        allow(method, "DELETE")
        self.jobs.cancel({project}, job.group(2))
        return 200, {}

    def _caller(self, headers, project: str) -> Caller:
        caller = self.caller(headers)
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
            raise Invalid([Problem("", "the body is not UTF-8 text")]) from None
        job, warnings = self.jobs.submit(text, project, caller)
        return 201, {"instance_id": job.instance_id, **({"warnings": warnings} if warnings else {})}

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
            raise Invalid(problems)
        instance_id = value.get("instance-id") or None
        count, jobs = self.jobs.list({project}, instance_id=instance_id, start=start, end=end,
                                     limit=limit, offset=offset)
        if instance_id and not count:
            raise NotFound(instance_id)
        return 200, {"count": count, "instances": [job.instance() for job in jobs]}


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
