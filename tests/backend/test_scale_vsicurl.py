"""``rs-scene classify-many`` on a raster read through GDAL's ``/vsicurl/`` from an HTTP server on
127.0.0.1 (Python's http.server with byte ranges, started here): Ray's read tasks fetch their own windows by
range requests, and the grid equals a single-process ``classify`` of the local file. The CLI is the user's own
process, so it reads loopback URLs; the service keeps refusing them (``check_input_path``)."""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from conftest import run_main
from rs_scene.scale.manifest import raster_key
from rs_scene.server.requests import RequestError, check_input_path
from scale_common import S2_OPTS, SUBSET, assert_same_outputs, reference

RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    """GET and HEAD of the files in ``directory``, with ``Range: bytes=a-b`` answered by 206."""

    ranges: ClassVar[list[tuple[int, int]]] = []  # (first, last) byte of each range answered

    def log_message(self, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        match = RANGE.match(self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if match is None or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        start, end = int(match[1]), min(int(match[2] or size - 1), size - 1)
        if start >= size:
            self.send_error(416)
            return None
        f = open(path, "rb")  # noqa: SIM115 -- closed by the caller of send_head, as its contract says
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", "image/tiff")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.ranges.append((start, end))
        self._left = end - start + 1
        return f

    def copyfile(self, source, outputfile) -> None:  # type: ignore[no-untyped-def]
        left = getattr(self, "_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(left))
        return None


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    handler = lambda *a, **k: RangeHandler(*a, directory=str(SUBSET.parent), **k)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_classify_many_reads_vsicurl_from_loopback_like_the_local_file(server: str, tmp_path: Path) -> None:
    url = f"/vsicurl/{server}/{SUBSET.name}"
    RangeHandler.ranges.clear()
    proc = run_main("classify-many", url, *S2_OPTS, "--out-dir", tmp_path / "run", "--shard-tiles", "7",
                    "--cpus", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert (summary["done"], summary["failed"], summary["tiles"]) == (1, 0, 36)
    size = SUBSET.stat().st_size
    assert RangeHandler.ranges and all(e - s + 1 < size for s, e in RangeHandler.ranges), \
        "read by byte ranges, never the whole file at once"
    ref = reference(SUBSET, tmp_path / "ref", [], heatmap=False)
    assert_same_outputs(ref, tmp_path / "run" / raster_key(url), heatmap=False)


def test_the_service_still_refuses_loopback_urls(server: str) -> None:
    with pytest.raises(RequestError, match="points at this machine itself"):
        check_input_path("classify", "raster", f"/vsicurl/{server}/{SUBSET.name}", allow_network=True)
