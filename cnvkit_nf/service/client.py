"""The HTTP client of the job service, for `cnvkit-nf submit`, `cancel`, `retry`, and
`status`/`log` with `--server`."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from urllib.parse import quote, urlencode


class ServiceError(Exception):
    """The service answered with an error (or could not be reached: status 0)."""

    def __init__(self, status: int, body: dict):
        super().__init__(f"{body.get('error_code', 'error')}: {body.get('error_msg', body)}")
        self.status, self.body = status, body


class Client:
    """Calls of the job API of one project on one server."""

    def __init__(self, server: str, project: str, token: str | None, timeout: float = 30):
        self.base = f"{server.rstrip('/')}/v2.0/{quote(project, safe='')}/gene/tools/cnvkit"
        self.token, self.timeout = token, timeout

    def _call(self, method: str, url: str, body: bytes | None = None) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["X-Auth-Token"] = self.token
        call = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(call, timeout=self.timeout) as answer:
                return json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as err:
            try:
                payload = json.loads(err.read())
            except ValueError:
                payload = {"error_msg": f"HTTP {err.code} {err.reason}"}
            raise ServiceError(err.code, payload) from None
        except (urllib.error.URLError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise ServiceError(0, {"error_msg": f"cannot reach {url}: {reason}"}) from None

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
