"""Hostile but fair use of the real service process, loopback only: requests without the token, with a wrong
Host, oversized or malformed bodies, slow clients, path escapes, payload memory, and signals mid-job. After
each: the answer is a 4xx with a message (never a 500 or a hang), the service still answers, and nothing
outside the requested outputs changed."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from conftest import S2_BANDS_OPT, S2_SCENE, SCENES
from hostile import changed, snapshot, temps, wait_for_temps
from service_client import Service, launch

SUBSET = SCENES / "sen2_20210527_aber_subset.tif"
S2 = {"model": "sentinel2-eurosat", "bands": S2_BANDS_OPT, "input_scale": 1000}


_start = launch


def _stop(svc: Service) -> None:
    if svc.proc.poll() is None:
        svc.proc.terminate()
        svc.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    svc = _start(tmp_path_factory.mktemp("hostile"), "--keep-jobs", "3")
    yield svc
    _stop(svc)


def _raw(svc: Service, head: str, body: bytes = b"", timeout: float = 120) -> tuple[int, dict[str, Any], bool]:
    """Send a hand-made request; (status, JSON answer, whether the service closed the connection)."""
    with socket.create_connection(("127.0.0.1", svc.info["port"]), timeout=timeout) as s:
        s.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, f"closed without an answer to {head.splitlines()[0]}"
            data += chunk
        header, rest = data.split(b"\r\n\r\n", 1)
        length = int(next(line.split(b":")[1] for line in header.split(b"\r\n")
                          if line.lower().startswith(b"content-length")))
        while len(rest) < length:
            rest += s.recv(65536)
        closed = b"connection: close" in header.lower()
        return int(header.split()[1]), json.loads(rest[:length]), closed


def _head(svc: Service, method: str, path: str, token: bool = True, host: str | None = None,
          **headers: str) -> str:
    host = host or f"127.0.0.1:{svc.info['port']}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    if token:
        lines.append(f"Authorization: Bearer {svc.info['token']}")
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return "\n".join(lines) + "\n"


def test_no_body_is_read_before_the_token_and_the_size_are_checked(service: Service) -> None:
    """A 200 MB claim gets its 401 (no token) or 413 (token, JSON endpoint) at once, with only the headers
    sent: the service never waits for, nor allocates, the body."""
    for token, path, status in ((False, "/health", 401), (False, "/jobs/classify", 401),
                                (True, "/jobs/train", 413), (True, "/estimate", 413)):
        t0 = time.time()
        code, reply, closed = _raw(service, _head(service, "POST", path, token, Content_Length=str(200 << 20)))
        assert (code, closed) == (status, True), reply
        assert time.time() - t0 < 2
    code, reply, _ = _raw(service, _head(service, "POST", "/jobs/classify", Content_Length=str(2 << 30)))
    assert code == 413 and "1073741824" in reply["error"]


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1", "localhost", "127.0.0.1:1",
                                  "rebind.example.com"])
def test_the_host_header_must_name_this_service(service: Service, host: str) -> None:
    code, reply, _ = _raw(service, _head(service, "GET", "/health", host=host.format(port=service.info["port"])))
    assert code == 403 and "Host header" in reply["error"]
    code, _, _ = _raw(service, _head(service, "GET", "/health", host=f"localhost:{service.info['port']}"))
    assert code == 200


def _nested(depth: int) -> bytes:
    return b'{"options": ' + b"[" * depth + b"]" * depth + b"}"


MALFORMED = [
    ("POST", "/jobs/train", {"Content_Length": "abc"}, b"", 400, "Content-Length"),
    ("POST", "/jobs/train", {"Content_Length": "-5"}, b"", 400, "Content-Length"),
    ("POST", "/jobs/train", {"Transfer_Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n", 411, "Content-Length"),
    ("POST", "/jobs/train", {}, _nested(100_000), 400, "nested too deeply"),
    ("POST", "/jobs/train", {}, b'{"seed": ' + b"9" * 5000 + b"}", 400, "not valid JSON"),
    ("POST", "/jobs/train", {}, b"\xff\xfe\x00garbage", 400, "not valid JSON"),
    ("POST", "/jobs/train", {}, b'{"data": "' + str(SCENES.parent / "ucmerced").encode()
     + b'", "name": "m", "method": "magic"}', 400, "unknown method 'magic'"),
    ("POST", "/jobs/train", {}, b'{"data": "' + str(SCENES.parent / "ucmerced").encode()
     + b'", "name": "m", "options": {"epochs": 0}}', 400, "option 'epochs' must be at least 1"),
    ("POST", "/jobs/classify", {}, json.dumps({**S2, "raster": str(SUBSET), "out_gpkg": "/tmp/x.gpkg"})
     .replace('"input_scale": 1000', '"input_scale": NaN').encode(), 400, "'input_scale' must be a finite"),
    ("POST", "/jobs/classify", {}, json.dumps({**S2, "raster": str(SUBSET), "out_gpkg": "/tmp/x.gpkg",
                                              "extent": [float("nan"), 0, 1, 1]}).encode(), 400,
     "'extent' [nan, 0, 1, 1] must be four finite numbers"),
    ("POST", "/jobs/classify", {}, json.dumps({**S2, "raster": str(SUBSET), "out_gpkg": "/tmp/x.gpkg",
                                              "tile_size": 0}).encode(), 400, "'tile_size' must be at least 1"),
    ("POST", "/jobs/classify", {}, json.dumps({**S2, "raster": str(SUBSET), "out_gpkg": "/tmp/x.gpkg",
                                              "stride": -8}).encode(), 400, "'stride' must be at least 1"),
    ("POST", "/jobs/classify", {}, json.dumps({**S2, "raster": str(SUBSET), "out_gpkg": "/tmp/x.gpkg",
                                              "gsd": 0}).encode(), 400, "'gsd' must be greater than 0"),
    ("GET", "/jobs/../../etc/passwd", {}, b"", 404, "no such endpoint"),
]


@pytest.mark.parametrize("method, path, headers, body, status, needle", MALFORMED)
def test_malformed_requests_get_a_4xx_with_a_message(service: Service, method: str, path: str,
                                                      headers: dict[str, str], body: bytes, status: int,
                                                      needle: str) -> None:
    headers = {"Content_Length": str(len(body)), **headers}
    if "Transfer_Encoding" in headers:
        del headers["Content_Length"]
    code, reply, _ = _raw(service, _head(service, method, path, True, **headers), body)
    assert code == status and needle in reply["error"], reply
    code, reply, _ = _raw(service, _head(service, method, path, False, **headers), body)
    assert code == 401, reply  # without the token nothing of it is even looked at
    assert service.call("/health")[0] == 200


def _threads(pid: int) -> int:
    return int(next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                    if line.startswith("Threads:")))


def test_slow_and_silent_clients_are_dropped_and_do_not_lock_others_out(service: Service) -> None:
    port, pid = service.info["port"], service.proc.pid
    base = _threads(pid)
    socks = []
    for i in range(40):  # more than the service's 32 connection slots
        s = socket.create_connection(("127.0.0.1", port), timeout=30)
        if i % 2:  # half the headers, never finished
            s.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port)
        else:  # claims a body it never sends
            s.sendall(_head(service, "POST", "/jobs/train", Content_Length="1000").replace("\n", "\r\n").encode()
                      + b"\r\n")
        socks.append(s)
    t0 = time.time()
    assert service.call("/health")[0] == 200 and time.time() - t0 < 5, "a slow crowd locked the plugin out"
    t0 = time.time()
    for s in socks:  # each is closed by the service by its deadline (10 s), never held for ever
        while True:
            s.settimeout(max(0.1, 20 - (time.time() - t0)))
            try:
                if s.recv(65536) == b"":
                    break
            except (ConnectionResetError, BrokenPipeError):
                break
        s.close()
    assert time.time() - t0 < 20, "slow connections were held beyond their deadline"
    time.sleep(1)
    assert _threads(pid) <= base + 2, "handler threads of dropped connections stayed"
    assert service.call("/health")[0] == 200


def test_outputs_only_where_the_request_may_write(service: Service, tmp_path: Path) -> None:
    scene = tmp_path / "scene.tif"
    shutil.copy(SUBSET, scene)
    notes = tmp_path / "notes.txt"
    notes.write_text("the user's own notes\n")
    fifo = tmp_path / "pipe.tif"
    os.mkfifo(fifo)
    assert _raw(service, _head(service, "GET", "/methods"))[0] == 200  # torch loads once, however slowly
    before = snapshot(tmp_path)
    ucm = str(SCENES.parent / "ucmerced")
    cases = [
        ("/jobs/train", {"data": ucm, "name": "../../../escaped"}, "must be a model name"),
        ("/jobs/train", {"data": ucm, "name": "/tmp/abs"}, "must be a model name"),
        ("/jobs/train", {"data": ucm, "name": ".hidden"}, "must be a model name"),
        ("/jobs/train", {"data": ucm, "out": str(notes)}, "not an earlier RS Scene output"),
        ("/jobs/classify", {**S2, "raster": str(scene), "out_gpkg": str(scene)}, "is an input of this run"),
        ("/jobs/classify", {**S2, "raster": str(scene), "heatmap": str(scene), "overwrite": True},
         "is an input of this run"),
        ("/jobs/classify", {**S2, "raster": str(scene), "out_gpkg": str(notes)}, "not an earlier RS Scene"),
        ("/jobs/classify", {**S2, "raster": str(scene), "heatmap": str(tmp_path / "a.tif"),
                            "class_raster": str(tmp_path / "." / "a.tif")}, "name the same file"),
        ("/jobs/classify", {**S2, "raster": f"/vsicurl/http://127.0.0.1:{service.info['port']}/health",
                            "out_gpkg": str(tmp_path / "g.gpkg")}, "started without --allow-network"),
        ("/jobs/classify", {**S2, "raster": str(scene), "mask": "https://example.com/mask.geojson",
                            "out_gpkg": str(tmp_path / "g.gpkg")}, "network path"),
        ("/estimate", {**S2, "raster": "/vsis3/bucket/scene.tif"}, "network path"),
        # beyond the list: a FIFO as input would block the worker for ever, as output the request thread
        ("/jobs/classify", {**S2, "raster": str(fifo), "out_gpkg": str(tmp_path / "g.gpkg")}, "not found"),
        ("/jobs/classify", {**S2, "raster": str(scene), "heatmap": str(fifo), "overwrite": True},
         "not a regular file"),
        ("/jobs/classify", {**S2, "raster": str(scene), "out_gpkg": "/dev/null", "overwrite": True},
         "not a regular file"),
        ("/jobs/classify", {**S2, "raster": str(scene), "mask": str(fifo), "out_gpkg": str(tmp_path / "g.gpkg")},
         "'mask' is not a file"),
        ("/jobs/classify", {**_pixels_body(tmp_path / "g.gpkg", 1), "pixels": {
            **_pixels_body(tmp_path / "g.gpkg", 1)["pixels"], "transform": [0, float("nan"), 0, 0, 0, -1]}},
         "six finite numbers"),
    ]
    for path, body, needle in cases:
        status, reply = service.call(path, body)
        assert status == 400 and needle in reply["error"], (body, reply)
    assert changed(before, snapshot(tmp_path)) == set()
    assert not (Path(service.info_file).parent.parent / "escaped.pt").exists()
    status, job = service.call("/jobs/classify", {**S2, "raster": str(scene), "out_gpkg": str(notes),
                                                   "overwrite": True})
    assert status == 202, job
    assert service.wait(job["id"])["state"] == "done"
    assert notes.read_bytes().startswith(b"SQLite format 3") and changed(before, snapshot(tmp_path)) == {
        "notes.txt"}


def test_network_paths_need_allow_network_and_never_reach_this_machine(tmp_path: Path) -> None:
    svc = _start(tmp_path, "--allow-network")
    try:
        for raster in (f"/vsicurl/http://127.0.0.1:{svc.info['port']}/health", "/vsicurl/http://localhost/x.tif",
                       "/vsizip//vsicurl/http://[::1]:80/a.zip/x.tif"):
            status, reply = svc.call("/jobs/classify", {**S2, "raster": raster, "out_gpkg": str(tmp_path / "g")})
            assert status == 400 and "points at this machine" in reply["error"], reply
        status, reply = svc.call("/jobs/classify", {**S2, "raster": "/vsicurl/https://example.invalid/x.tif",
                                                    "out_gpkg": str(tmp_path / "g.gpkg")})
        assert status == 202, reply  # allowed (the job would fail here: no network), the request is fine
    finally:
        _stop(svc)


def _pixels_body(out: Path, mb: int) -> dict[str, Any]:
    side = int((mb * 1024**2 / 2) ** 0.5)
    data = base64.b64encode(bytes(side * side * 2)).decode()
    return {**S2, "out_gpkg": str(out), "pixels": {"width": side, "height": side, "count": 1,
                                                    "dtype": "uint16", "transform": [0, 10, 0, 0, 0, -10],
                                                    "data_b64": data}}


def _rss_mb(pid: int) -> float:
    line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def test_payloads_are_released_and_finished_jobs_pruned(service: Service, tmp_path: Path) -> None:
    """16-MB by-value jobs (they fail: one band for a ten-band model) leave the memory where the first left
    it, and only the last three finished jobs are kept (the service runs with --keep-jobs 3). A payload kept
    alive would add >= 16 MB a job; the allocator may step up once in a while (+40 MB at one of five jobs
    seen), so the test asks for a median step near 0 and less than half a leak's growth in all."""
    ids, rss = [], []
    for i in range(10):
        status, job = service.call("/jobs/classify", _pixels_body(tmp_path / f"g{i}.gpkg", 16))
        assert status == 202, job
        assert service.wait(job["id"])["state"] == "failed"
        ids.append(job["id"])
        rss.append(_rss_mb(service.proc.pid))
    steps = sorted(b - a for a, b in pairwise(rss[1:]))
    assert steps[len(steps) // 2] < 4, f"memory grows by a median {steps[len(steps) // 2]:.0f} MB a job: {rss}"
    assert rss[-1] - rss[1] < 16 * 8 / 2, f"memory grew {rss[-1] - rss[1]:.0f} MB over eight 16-MB jobs: {rss}"
    kept = {j["id"] for j in service.call("/jobs")[1]["jobs"]}
    assert kept >= set(ids[-3:]) and not kept & set(ids[:3])
    assert service.call(f"/jobs/{ids[0]}")[0] == 404
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_a_signal_mid_job_cancels_it_and_the_service_exits_within_seconds(tmp_path: Path, sig: int) -> None:
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(S2_SCENE, work / "big.tif")
    svc = _start(tmp_path / "svc")
    before = snapshot(work)
    outs = {"out_gpkg": str(work / "g.gpkg"), "heatmap": str(work / "h.tif"), "class_raster": str(work / "c.tif")}
    status, job = svc.call("/jobs/classify", {**S2, "raster": str(work / "big.tif"), "stride": 8, **outs})
    assert status == 202, job
    wait_for_temps(work, svc.proc)
    t0 = time.time()
    svc.proc.send_signal(sig)
    svc.proc.wait(timeout=15)
    assert time.time() - t0 < 10, f"the service took {time.time() - t0:.1f} s to stop after {sig}"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", svc.info["port"]), timeout=2).close()
    assert not any((work / n).exists() for n in ("g.gpkg", "h.tif", "c.tif")), "partial file under its name"
    assert {k for k in changed(before, snapshot(work)) if ".rs-scene-tmp-" not in k} == set()
    if sig == signal.SIGKILL:
        assert temps(work), "SIGKILL cannot clean up: the next run on the same output does"
        svc = _start(tmp_path / "svc2")
        try:
            status, job = svc.call("/jobs/classify", {**S2, "raster": str(work / "big.tif"), **outs})
            assert status == 202 and svc.wait(job["id"])["state"] == "done", job
        finally:
            _stop(svc)
    else:
        assert not svc.info_file.exists(), "the info file must go when the service stops"
    assert temps(work) == [], f"left {temps(work)}"
