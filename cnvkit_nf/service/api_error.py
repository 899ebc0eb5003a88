"""An error answer of the service's HTTP API, whichever face gives it: its HTTP status, the
service family's error code (DLI.xxxx), message, the problems of a refused request and the
methods a 405 names. Each face writes it in its own form (`seed_api.error_body`,
`wes.error_body`); `app.error_answer` picks the face of a request's target.
"""

from __future__ import annotations

from cnvkit_nf.contract.problems import Problem


class ApiError(Exception):
    """An error answer: HTTP status, the family's code, message (and problems, Allow)."""

    def __init__(self, status: int, code: str, message: str, problems: list[Problem] = (),
                 allow: tuple[str, ...] = ()):
        super().__init__(message)
        self.status, self.code, self.problems = status, code, list(problems)
        self.allow = allow  # the methods a 405 answer names


def allow(method: str, *allowed: str) -> None:
    """Refuse (405) a method the target does not take."""
    if method not in allowed:
        raise ApiError(405, "DLI.0007", f"{method} is not supported here; use "
                       f"{' or '.join(allowed)}", allow=allowed)
