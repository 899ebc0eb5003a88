"""The HTTP client of the job service, for `cnvkit-nf submit`, `cancel`, `retry`, and
`status`/`log` with `--server`."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import quote, urlencode


class ServiceError(Exception):
    """The service answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, body: dict):
        reason = body.get("error_msg", body)
        code = body.get("error_code")
        super().__init__(f"{code}: {reason}" if code else str(reason))
        self.status, self.body = status, body


# Answers that say the service did not take the call and may take it shortly.
NOT_TAKEN = frozenset({429, 503})
# For calls that change nothing (GET), also a gateway's failure or a connection lost midway.
IDEMPOTENT_AGAIN = frozenset({502, 504})
RETRY_SECONDS = 60.0  # how long a call is tried again, in all, by default
_FIRST_PAUSE, _LONGEST_PAUSE = 0.5, 8.0


class Client:
    """Calls of the job API of one project on one server. A call the service did not take
    (connection refused, 503 busy, 429 with its Retry-After) is tried again with growing
    pauses for up to `retry_seconds`; a GET also after a lost connection, a timeout or a
    gateway's 502/504. A POST or DELETE that may have reached the service is never sent
    twice."""

    def __init__(self, server: str, project: str, token: str | None, timeout: float = 30,
                 retry_seconds: float = RETRY_SECONDS,
                 say: Callable[[str], None] = lambda message: None):
        self.base = f"{server.rstrip('/')}/v2.0/{quote(project, safe='')}/gene/tools/cnvkit"
        self.token, self.timeout = token, timeout
        self.retry_seconds, self.say = retry_seconds, say

    def _call(self, method: str, url: str, body: bytes | None = None) -> dict:
        deadline = time.monotonic() + self.retry_seconds
        pause = _FIRST_PAUSE
        while True:
            try:
                return self._once(method, url, body)
            except _Transient as err:
                wait = min(max(pause, err.retry_after), _LONGEST_PAUSE)
                if time.monotonic() + wait > deadline:
                    raise err.error from None
                self.say(f"{err.error}; trying again in {wait:g} s")
                time.sleep(wait)
                pause *= 2

    def _once(self, method: str, url: str, body: bytes | None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        call = urllib.request.Request(url, data=body, method=method, headers=headers)
        again = NOT_TAKEN | (IDEMPOTENT_AGAIN if method == "GET" else frozenset())
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                payload = json.loads(err.read())
            except ValueError:
                payload = {"error_msg": f"HTTP {err.code} {err.reason}"}
            error = ServiceError(err.code, payload)
            if err.code in again:
                raise _Transient(error, _seconds(err.headers.get("Retry-After"))) from None
            raise error from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            error = ServiceError(0, {"error_msg": f"cannot reach {url}: {reason}"})
            if isinstance(reason, ConnectionRefusedError) or method == "GET":
                raise _Transient(error) from None  # refused: nothing was sent
            raise error from None

    def submit(self, request_text: str) -> dict:
        """Submit a request (JSON text as written): the answer, with its instance_id."""
        return self._call("POST", self.base, request_text.encode("utf-8"))

    def job(self, instance_id: str) -> dict:
        """One job as the query API shows it."""
        answer = self._call("GET", f"{self.base}?{urlencode({'instance-id': instance_id})}")
        return answer["instances"][0]

    def cancel(self, instance_id: str) -> dict:
        """Cancel a job."""
        return self._call("DELETE", f"{self.base}/{quote(instance_id, safe='')}")

    def retry(self, instance_id: str) -> dict:
        """Run a FAILED or CANCELLED job again (its finished tasks are reused)."""
        return self._call("POST", f"{self.base}/{quote(instance_id, safe='')}/retry")

    def log(self, instance_id: str) -> dict:
        """A job's log and its failure in full."""
        return self._call("GET", f"{self.base}/{quote(instance_id, safe='')}/log")


class _Transient(Exception):
    """A call to try again: the error to raise when time is up, the pause the service asked."""

    def __init__(self, error: ServiceError, retry_after: float = 0.0):
        super().__init__(str(error))
        self.error, self.retry_after = error, retry_after


def _seconds(retry_after: str | None) -> float:
    """A Retry-After of seconds (a date, or nothing readable: 0)."""
    try:
        return max(0.0, float(retry_after or 0))
    except ValueError:
        return 0.0
