"""The job service's HTTP API: which face answers a request target (GA4GH WES, `wes`, under
`wes.ROOT`; the seed's REST API, `seed_api`, every other), both over one job API (`job_api`).
Its transport (`http_server`) carries it; neither face knows the other.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from cnvkit_nf.service import seed_api, wes
from cnvkit_nf.service.api_error import ApiError
from cnvkit_nf.service.config import Caller
from cnvkit_nf.service.job_api import Jobs


def _is_wes(path: str) -> bool:
    return path.startswith(wes.ROOT)


class App:
    """The API, independent of the HTTP server that carries it."""

    def __init__(self, jobs: Jobs):
        self.jobs = jobs
        self.seed, self.wes = seed_api.SeedApi(jobs), wes.Wes(jobs)

    def _face(self, path: str) -> seed_api.SeedApi | wes.Wes:
        return self.wes if _is_wes(path) else self.seed

    def caller_of(self, target: str, headers) -> Caller | None:
        """Who sent a request, by the token its face takes; None without a valid token."""
        return self._face(urlsplit(target).path).caller(headers)

    def submission_token(self, method: str, target: str, headers) -> str | None:
        """The token of a request that submits a job (its body is a request to check); None
        for every other request. The transport reads the body only of a submission whose
        token is valid (`caller_of`)."""
        path = urlsplit(target).path
        return self._face(path).submission_token(method, path, headers)

    def handle(self, method: str, target: str, headers, body: bytes | None
               ) -> tuple[int, dict]:
        """Answer one request: (HTTP status, JSON body); raises ApiError for error answers.
        `body` is the submission's (`submission_token`), None for any other request."""
        url = urlsplit(target)
        return self._face(url.path).handle(method, url.path, url.query, headers, body)


def error_answer(target: str, err: ApiError) -> tuple[int, dict]:
    """An error answer in the form of the face that `target` addresses."""
    face = wes if _is_wes(urlsplit(target).path) else seed_api
    return err.status, face.error_body(err)


def internal_error(target: str) -> tuple[int, dict]:
    """The answer to a request the service failed on, in the form of its face."""
    return error_answer(target, ApiError(500, "DLI.0999", "internal server error"))
