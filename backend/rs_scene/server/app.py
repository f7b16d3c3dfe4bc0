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
from .conns import Connections
from .jobs import FINISHED, JobQueue, QueueFull
from .requests import RequestError, classify_request, train_request
from .tasks import classify_runner, estimate, train_runner

JSON_LIMIT = 1024**2  # every JSON request but a classify
PIXELS_LIMIT = 1024**3  # a classify may carry pixels by value (the plugin sends at most 60 M values)
READ_TIMEOUT_S = 10.0  # one read from a socket; whole phases are bounded by conns.Connections' deadlines


class Service(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 64

    def __init__(self, port: int, token: str, device: str, allow_network: bool = False,
                 keep_jobs: int = 100) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.token, self.device, self.allow_network = token, device, allow_network
        self.jobs = JobQueue(keep=keep_jobs)
        self.cluster: Any = None  # the Ray cluster classify jobs run on (rs-scene serve --ray), else None
        self.conns = Connections()
        real = self.server_address[1]
        self.hosts = {f"127.0.0.1:{real}", f"localhost:{real}"}

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.conns.admit(request):  # every slot busy with a request: refuse, do not queue threads
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def server_close(self) -> None:
        self.conns.stop()
        super().server_close()


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
    info.update(runtime_info(info["type"]))
    return info


def runtime_info(device_type: str) -> dict[str, Any]:
    """What ``runtime auto`` runs classify with here (ONNX Runtime on CPU when installed, else PyTorch) and
    the ONNX Runtime version, read without importing it."""
    from importlib.metadata import PackageNotFoundError, version

    from ..engine.runtime import onnx_available

    try:
        ort = version("onnxruntime")
    except PackageNotFoundError:
        ort = None
    onnx = device_type == "cpu" and onnx_available()
    return {"runtime": "onnx" if onnx else "torch", "onnxruntime": ort}


def ray_info(cluster: Any) -> dict[str, Any] | None:
    """The cluster classify jobs run on (address, nodes, CPUs, GPUs), or None without --ray."""
    if cluster is None:
        return None
    try:
        return cluster.info()
    except Exception as exc:  # noqa: BLE001 -- the cluster went away: say so, the service still answers
        return {"address": cluster.address, "error": f"{type(exc).__name__}: {exc}"}


class Handler(BaseHTTPRequestHandler):
    server: Service
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT_S

    def log_message(self, fmt: str, *args: Any) -> None:
        path = getattr(self, "path", "")
        if not path.startswith("/jobs/") or self.command != "GET":  # progress polls would flood the log
            sys.stderr.write(f"{self.address_string()} {fmt % args}\n")

    def finish(self) -> None:
        self.server.conns.close(self.connection)
        super().finish()

    # -- plumbing ------------------------------------------------------------------------------------------
    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.server.conns.waiting_for_request(self.connection)

    def _refuse(self, status: int, message: str) -> None:
        """Answer without reading the body: the connection is out of step and must close."""
        self.close_connection = True
        self._send(status, {"error": message})

    def _gate(self, routes: dict[str, Any]) -> tuple[Any, list[str]] | None:
        """Host, token, route and body size, in that order, all before a byte of the body is read."""
        if (self.headers.get("Host") or "").strip().lower() not in self.server.hosts:
            self._refuse(403, f"the Host header must be one of {', '.join(sorted(self.server.hosts))}")
            return None
        given = self.headers.get("Authorization", "")
        if not (given.startswith("Bearer ") and hmac.compare_digest(given[7:].encode(),
                                                                    self.server.token.encode())):
            self._refuse(401, "missing or wrong token: send 'Authorization: Bearer <token>' with the token "
                              "from the service's info file")
            return None
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        key = "/".join(
            p if i != 1 or parts[0] != "jobs" or p in ("classify", "train") else "<id>"
            for i, p in enumerate(parts)
        )
        handler = routes.get(key)
        if handler is None:
            self._refuse(404, f"no such endpoint: {self.command} {self.path.split('?')[0]}")
            return None
        if not self._read_body(key):
            return None
        return handler, [p for i, p in enumerate(parts) if key.split("/")[i] == "<id>"]

    def _read_body(self, key: str) -> bool:
        self._raw = b""
        if self.headers.get("Transfer-Encoding"):
            self._refuse(411, "send the body with a Content-Length header (no Transfer-Encoding)")
            return False
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit():
            self._refuse(400, f"bad Content-Length header: {text!r}")
            return False
        length, limit = int(text), PIXELS_LIMIT if key == "jobs/classify" else JSON_LIMIT
        if length > limit:
            self._refuse(413, f"the request body of {length} bytes is larger than the {limit} bytes "
                              f"{self.command} /{key} takes")
            return False
        if length:
            self.server.conns.reading_body(self.connection, length)
            self._raw = self.rfile.read(length)
            if len(self._raw) != length:
                self.close_connection = True  # the client went away, or the watchdog closed it
                return False
        self.server.conns.handling(self.connection)
        return True

    def _body(self) -> Any:
        raw, self._raw = self._raw, b""  # parsed once; the bytes are not kept
        if not raw:
            raise RequestError("the request has no JSON body")
        try:
            return json.loads(raw)
        except RecursionError as exc:
            raise RequestError("the body is nested too deeply") from exc
        except (ValueError, UnicodeDecodeError) as exc:
            raise RequestError(f"the body is not valid JSON: {exc}") from exc

    def _dispatch(self, routes: dict[str, Any]) -> None:
        self.server.conns.handling(self.connection)
        gate = self._gate(routes)
        if gate is None:
            return
        handler, ids = gate
        try:
            status, body = handler(*ids)
        except RequestError as exc:
            status, body = 400, {"error": str(exc)}
        except QueueFull as exc:
            status, body = 429, {"error": str(exc)}
        except Exception as exc:  # never let one request take the service down
            traceback.print_exc()
            status, body = 500, {"error": f"{type(exc).__name__}: {exc}"}
        self._send(status, body)
        if handler == self.shutdown:  # only once the reply is out: a client must not see a cut-off answer
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
            "ray": ray_info(self.server.cluster),
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
        req = classify_request(self._body(), self.server.allow_network)
        runner = classify_runner(req, self.server.device, self.server.cluster)
        job = self.server.jobs.submit("classify", runner, req)
        return 202, job.to_dict()

    def estimate(self) -> tuple[int, dict[str, Any]]:
        """Seconds a classify request will take, measured on a sample of it (a few seconds the first time
        for a model, raster kind and settings; answered from a cache after that)."""
        from ..errors import RSSceneError

        req = classify_request(self._body(), self.server.allow_network, outputs=False)
        try:
            return 200, estimate(req, self.server.device)
        except RSSceneError as exc:
            return 400, {"error": str(exc)}

    def train(self) -> tuple[int, dict[str, Any]]:
        req = train_request(self._body(), self.server.allow_network)
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
