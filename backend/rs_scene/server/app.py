"""The HTTP side: routing, the bearer token check and JSON in/out. Loopback only."""

from __future__ import annotations

import hmac
import json
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .. import __version__
from .jobs import FINISHED, JobQueue
from .requests import RequestError, classify_request, train_request
from .tasks import classify_runner, estimate, train_runner

MAX_BODY = 2 * 1024**3  # pixels by value can be large; refuse what no layer extent needs


class Service(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, token: str, device: str) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.token, self.device = token, device
        self.jobs = JobQueue()


def device_info(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "requested": device,
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available() and (device in ("auto", "cuda") or device.startswith("cuda:")):
        idx = int(device.split(":")[1]) if ":" in device else 0
        props = torch.cuda.get_device_properties(idx)
        info.update(type="cuda", name=props.name, memory_gb=round(props.total_memory / 1024**3, 1))
    else:
        import platform

        info.update(
            type="cpu", name=platform.processor() or platform.machine(), threads=torch.get_num_threads()
        )
    return info


class Handler(BaseHTTPRequestHandler):
    server: Service
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: Any) -> None:
        if not self.path.startswith("/jobs/") or self.command != "GET":  # progress polls would flood the log
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    # -- plumbing ------------------------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        if given.startswith("Bearer ") and hmac.compare_digest(
            given[7:].encode(), self.server.token.encode()
        ):
            return True
        self._send(
            401,
            {
                "error": "missing or wrong token: send 'Authorization: Bearer <token>' with the "
                "token from the service's info file"
            },
        )
        return False

    def _read_raw(self) -> None:
        """Read the whole body before answering anything, so a kept-alive connection stays in step."""
        self._raw, self._raw_error = b"", None
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._raw_error, self.close_connection = "bad Content-Length header", True
            return
        if length > MAX_BODY:
            self._raw_error = f"the request body of {length} bytes is larger than {MAX_BODY}"
            self.close_connection = True
            return
        self._raw = self.rfile.read(length) if length > 0 else b""

    def _body(self) -> Any:
        if self._raw_error:
            raise RequestError(self._raw_error)
        if not self._raw:
            raise RequestError("the request has no JSON body")
        try:
            return json.loads(self._raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON: {exc}") from exc

    def _dispatch(self, routes: dict[str, Any]) -> None:
        self._read_raw()
        if not self._authorised():
            return
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        key = "/".join(
            p if i != 1 or parts[0] != "jobs" or p in ("classify", "train") else "<id>"
            for i, p in enumerate(parts)
        )
        handler = routes.get(key)
        if handler is None:
            self._send(404, {"error": f"no such endpoint: {self.command} {self.path}"})
            return
        try:
            status, body = handler(*[p for i, p in enumerate(parts) if key.split("/")[i] == "<id>"])
        except RequestError as exc:
            status, body = 400, {"error": str(exc)}
        except Exception as exc:  # never let one request take the service down
            traceback.print_exc()
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        self._send(status, body)
        if key == "shutdown":  # only once the reply is out: a client must not see a cut-off answer
            self.close_connection = True
            threading.Thread(target=self.server.shutdown, daemon=True).start()

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch(
            {
                "health": self.health,
                "models": self.models,
                "methods": self.methods,
                "jobs": self.list_jobs,
                "jobs/<id>": self.job,
            }
        )

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch(
            {
                "jobs/classify": self.classify,
                "estimate": self.estimate,
                "jobs/train": self.train,
                "jobs/<id>/cancel": self.cancel,
                "shutdown": self.shutdown,
            }
        )

    # -- endpoints -----------------------------------------------------------------------------------------
    def health(self) -> tuple[int, dict[str, Any]]:
        return 200, {
            "status": "ok",
            "service": "rs-scene",
            "version": __version__,
            "python": sys.executable,
            "device": device_info(self.server.device),
            "jobs": self.server.jobs.counts(),
        }

    def models(self) -> tuple[int, dict[str, Any]]:
        from ..zoo import list_models, user_models_dir

        return 200, {"models": list_models(), "user_models_dir": str(user_models_dir())}

    def methods(self) -> tuple[int, dict[str, Any]]:
        from ..methods import list_methods

        return 200, {"methods": list_methods()}

    def list_jobs(self) -> tuple[int, dict[str, Any]]:
        return 200, {
            "jobs": [{k: v for k, v in j.to_dict().items() if k != "history"} for j in self.server.jobs.all()]
        }

    def job(self, job_id: str) -> tuple[int, dict[str, Any]]:
        job = self.server.jobs.get(job_id)
        if job is None:
            return 404, {"error": f"no job with id {job_id}"}
        return 200, job.to_dict()

    def classify(self) -> tuple[int, dict[str, Any]]:
        req = classify_request(self._body())
        job = self.server.jobs.submit("classify", classify_runner(req, self.server.device), req)
        return 202, job.to_dict()

    def estimate(self) -> tuple[int, dict[str, Any]]:
        """Seconds a classify request will take, measured on a sample of it (a few seconds the first time
        for a model, raster kind and settings; answered from a cache after that)."""
        from ..errors import RSSceneError

        req = classify_request(self._body())
        try:
            return 200, estimate(req, self.server.device)
        except RSSceneError as exc:
            return 400, {"error": str(exc)}

    def train(self) -> tuple[int, dict[str, Any]]:
        req = train_request(self._body())
        job = self.server.jobs.submit("train", train_runner(req, self.server.device), req)
        return 202, job.to_dict()

    def cancel(self, job_id: str) -> tuple[int, dict[str, Any]]:
        job = self.server.jobs.get(job_id)
        if job is None:
            return 404, {"error": f"no job with id {job_id}"}
        if job.state not in FINISHED:
            self.server.jobs.cancel(job)
        return 200, job.to_dict()

    def shutdown(self) -> tuple[int, dict[str, Any]]:
        self.server.jobs.stop()
        return 200, {"status": "shutting down"}
