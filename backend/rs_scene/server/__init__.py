"""``rs-scene serve``: the loopback HTTP service the QGIS plugin drives.

Binds 127.0.0.1 only, on a free port unless one is given; a fresh random token per start is written with the
port to an info file that only the user can read, and every request must carry ``Authorization: Bearer
<token>`` and a ``Host`` of ``127.0.0.1:<port>`` or ``localhost:<port>``. Endpoints (JSON): ``GET /health``,
``GET /models``, ``GET /methods``, ``POST /jobs/classify``, ``POST /estimate``, ``POST /jobs/train``,
``GET /jobs``, ``GET /jobs/<id>``, ``POST /jobs/<id>/cancel``, ``POST /shutdown``. With ``--ray ADDRESS`` the
classify jobs of raster files run on that Ray cluster (:mod:`rs_scene.scale.service`); ``/health`` names it.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from .. import __version__

STOP_GRACE_S = 3.0


def default_info_file() -> Path:
    base = (
        os.environ.get("XDG_RUNTIME_DIR")
        or os.environ.get("XDG_CONFIG_HOME")
        or os.path.join(os.path.expanduser("~"), ".config")
    )
    return Path(base) / "rs-scene" / "service.json"


def write_info_file(path: Path, info: dict[str, Any]) -> None:
    """Write atomically with mode 0600 from the start: the token is never readable by others."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info, f)
    os.replace(tmp, path)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="TCP port on 127.0.0.1 (default 0: a free one)")
    p.add_argument(
        "--info-file",
        type=Path,
        default=None,
        help=f"where to write port and token (default {default_info_file()})",
    )
    p.add_argument("--device", default="auto", help="device for jobs: auto, cpu, cuda, cuda:N or mps")
    p.add_argument(
        "--allow-network",
        action="store_true",
        help="accept network paths (/vsicurl/, /vsis3/, URLs) as inputs; off: local files only",
    )
    p.add_argument("--keep-jobs", type=int, default=100, help="finished jobs kept for their results")
    p.add_argument(
        "--ray",
        default=None,
        metavar="ADDRESS",
        help="run classify jobs on a Ray cluster: local (started here, on 127.0.0.1), auto, HOST:PORT or "
        "ray://HOST:10001 (default: in this process, no Ray)",
    )
    p.add_argument("--shard-tiles", type=int, default=64,
                   help="with --ray: tiles per shard (progress moves once per finished shard; default 64)")
    p.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="exit when this process ends (the plugin passes QGIS's pid)",
    )


def _watch_parent(pid: int, stop: Any) -> None:
    def watch() -> None:
        while True:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                stop()
                return
            except PermissionError:
                pass
            threading.Event().wait(2.0)

    threading.Thread(target=watch, name="rs-scene-parent-watch", daemon=True).start()


def serve(args: argparse.Namespace) -> int:
    from .app import Service

    info_file = args.info_file or default_info_file()
    token = secrets.token_urlsafe(32)
    if args.keep_jobs < 1:
        print("rs-scene serve: error: --keep-jobs must be at least 1", file=sys.stderr)
        return 2
    if args.shard_tiles < 1:
        print("rs-scene serve: error: --shard-tiles must be at least 1", file=sys.stderr)
        return 2
    if not args.allow_network:  # also for /vsicurl/ paths inside local files (a VRT's sources)
        os.environ["CPL_VSIL_CURL_ALLOWED_EXTENSIONS"] = ".rs-scene-network-not-allowed"
    try:
        service = Service(args.port, token, args.device, args.allow_network, args.keep_jobs)
    except OSError as exc:
        print(f"rs-scene serve: error: cannot listen on 127.0.0.1:{args.port}: {exc}", file=sys.stderr)
        return 2
    if args.ray is not None and not _join_cluster(service, args.ray, args.shard_tiles):
        return 2
    port = service.server_address[1]
    write_info_file(
        info_file,
        {
            "port": port,
            "token": token,
            "pid": os.getpid(),
            "version": __version__,
            "url": f"http://127.0.0.1:{port}",
        },
    )

    def stop(*_: Any) -> None:
        service.jobs.stop()
        threading.Thread(target=service.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.parent_pid:
        _watch_parent(args.parent_pid, stop)
    print(
        f"rs-scene serve: listening on http://127.0.0.1:{port} (info file {info_file})",
        file=sys.stderr,
        flush=True,
    )
    try:
        service.serve_forever(poll_interval=0.2)
    finally:
        service.server_close()
        _remove_info_file(info_file)
    _exit_when_idle(service)
    if service.cluster is not None:
        service.cluster.ray.shutdown()
    print("rs-scene serve: stopped", file=sys.stderr, flush=True)
    return 0


def _join_cluster(service: Any, address: str, shard_tiles: int) -> bool:
    """Start or join the Ray cluster before the info file is written (a client finds a service that is ready);
    on failure say why, naming --ray, and close the port."""
    from ..errors import RSSceneError

    try:
        from ..scale.service import connect

        service.cluster = connect(address, shard_tiles)
    except (RSSceneError, ModuleNotFoundError) as exc:
        hint = " (rs-scene serve --ray needs Ray: pip install 'rs-scene[ray]')" if isinstance(
            exc, ModuleNotFoundError) else ""
        print(f"rs-scene serve: error: {exc}{hint}", file=sys.stderr, flush=True)
        service.server_close()
        return False
    info = service.cluster.info()
    print(f"rs-scene serve: classify jobs run on the Ray cluster {address} ({info['nodes']} node(s), "
          f"{info['cpus']:g} CPUs, {info['gpus']:g} GPUs)", file=sys.stderr, flush=True)
    return True


def _remove_info_file(info_file: Path) -> None:
    try:
        if json.loads(info_file.read_text()).get("pid") == os.getpid():
            info_file.unlink()
    except (OSError, ValueError):
        pass


def _exit_when_idle(service: Any) -> None:
    """The running job was cancelled: give it a few seconds to remove its temporary files, then exit even
    if it is still inside a long computation (a restarted plugin must not find a second service busy)."""
    service.jobs.stop()
    if service.jobs.wait_idle(STOP_GRACE_S):
        return
    from ..io.outputs import remove_live_temps

    remove_live_temps()
    print(f"rs-scene serve: the running job did not stop within {STOP_GRACE_S:.0f} s; exiting anyway",
          file=sys.stderr, flush=True)
    os._exit(0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rs-scene serve", description=__doc__.splitlines()[0])
    add_arguments(p)
    return serve(p.parse_args(argv))
