"""HTTP client of the loopback service: JSON in and out, the bearer token on every request. Qt-free."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class BackendError(Exception):
    """Something the user can act on; the message says what went wrong and how to fix it."""


class BackendUnreachable(BackendError):
    """No service answers at the address (not started, or it died)."""


class JobCancelled(Exception):
    """The user cancelled; nothing was written."""


class BackendClient:
    def __init__(self, url: str, token: str, timeout: float = 30.0) -> None:
        self.url, self.token, self.timeout = url.rstrip("/"), token, timeout

    def request(self, path: str, body: Any = None, timeout: float | None = None) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method="GET" if body is None else "POST")
        req.add_header("Authorization", f"Bearer {self.token}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read()).get("error", "")
            except ValueError:
                message = exc.reason
            raise BackendError(f"RS Scene service: {message or exc.reason} (HTTP {exc.code})") from exc
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            raise BackendUnreachable(f"the RS Scene service at {self.url} does not answer ({exc})") from exc

    def health(self) -> dict[str, Any]:
        return self.request("/health", timeout=60)

    def models(self) -> list[dict[str, Any]]:
        return self.request("/models", timeout=120)["models"]

    def methods(self) -> list[dict[str, Any]]:
        return self.request("/methods", timeout=120)["methods"]

    def submit(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.request(f"/jobs/{kind}", body, timeout=300)

    def estimate(self, body: dict[str, Any]) -> dict[str, Any]:
        """``{"eta_s", "tiles"}`` for a classify request (a calibration run: seconds the first time)."""
        return self.request("/estimate", body, timeout=600)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request(f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request(f"/jobs/{job_id}/cancel", {})

    def shutdown(self) -> None:
        self.request("/shutdown", {}, timeout=5)
