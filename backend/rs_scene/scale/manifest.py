"""A run's folder: ``run.json`` (options and inputs, written atomically), ``manifest.jsonl`` (one line per
event, appended and fsynced: a raster planned, a shard finished, a raster done or failed) and ``.parts/``
(the shards' part files). A shard counts as finished when its line is there and its part file exists (the
part is renamed into place before the line is written), so ``--resume`` skips exactly the finished work."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import RSSceneError
from ..io.raster import gdal_virtual

FORMAT = "rs-scene-run/1"
RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")
LIST_SUFFIXES = (".txt", ".lst", ".list")


def expand_inputs(specs: list[str]) -> list[str]:
    """Rasters from list files (one path a line, ``#`` comments, relative to the list), folders (their
    rasters), globs and single paths (files or GDAL virtual paths), in order, without repeats. Paths are made
    absolute, not resolved: two links to one file are two inputs, as they name two rasters."""
    out: list[str] = []
    for spec in specs:
        if gdal_virtual(spec):
            out.append(spec)
        elif os.path.isdir(spec):
            found = [p for p in Path(spec).iterdir() if p.suffix.lower() in RASTER_SUFFIXES]
            out += sorted(os.path.abspath(p) for p in found)
        elif spec.lower().endswith(LIST_SUFFIXES) and os.path.isfile(spec):
            base = Path(os.path.abspath(spec)).parent
            for line in Path(spec).read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    out.append(line if gdal_virtual(line) else os.path.abspath(base / line))
        elif any(c in spec for c in "*?["):
            out += sorted(os.path.abspath(p) for p in glob.glob(spec, recursive=True))
        else:
            out.append(os.path.abspath(spec))
    unique = list(dict.fromkeys(out))
    if not unique:
        raise RSSceneError(f"no rasters found in {' '.join(specs)}")
    return unique


def raster_key(path: str) -> str:
    """A file-name-safe id of an input: its stem and a hash of its full path (two scenes.tif in two folders
    get two keys)."""
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(path).stem)[:60] or "raster"
    return f"{stem}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"


@dataclass
class RasterState:
    key: str
    path: str
    status: str = "pending"  # pending, planned, done, failed
    plan: dict[str, Any] | None = None
    shards_done: dict[int, dict[str, Any]] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def _atomic_json(path: Path, obj: Any) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".run-", suffix=".json", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Manifest:
    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(out_dir)
        self.run_json, self.lines = self.dir / "run.json", self.dir / "manifest.jsonl"
        self.parts = self.dir / ".parts"

    @classmethod
    def start(cls, out_dir: str, inputs: list[str], options: dict[str, Any], resume: bool) -> Manifest:
        """A new run in ``out_dir``, or (``resume``) the run there, checked to have the same options."""
        m = cls(out_dir)
        if m.dir.exists() and not m.dir.is_dir():
            raise RSSceneError(f"--out-dir {out_dir} is a file")
        m.dir.mkdir(parents=True, exist_ok=True)
        keys = [{"key": raster_key(p), "path": p} for p in inputs]
        if m.run_json.exists():
            if not resume:
                raise RSSceneError(f"{out_dir} already holds a run: pass --resume to finish it, or choose "
                                   "another --out-dir")
            old = json.loads(m.run_json.read_text())
            if old.get("options") != options:
                diff = sorted(k for k in set(old.get("options", {})) | set(options)
                              if old.get("options", {}).get(k) != options.get(k))
                raise RSSceneError(f"--resume: the run in {out_dir} was started with other options "
                                   f"({', '.join(diff)}); resume it with the same ones")
            known = {r["key"] for r in old["inputs"]}
            keys = old["inputs"] + [k for k in keys if k["key"] not in known]
        m._end_torn_line()
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _atomic_json(m.run_json, {"format": FORMAT, "options": options, "inputs": keys, "updated": now})
        return m

    def _end_torn_line(self) -> None:
        """A line a crash cut short stays unread; end it, so that the next event starts on its own line."""
        if self.lines.exists() and self.lines.stat().st_size:
            with open(self.lines, "rb+") as f:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")

    def append(self, event: dict[str, Any]) -> None:
        line = json.dumps(event | {"t": round(time.time(), 3)}, separators=(",", ":")) + "\n"
        with open(self.lines, "a") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def events(self) -> list[dict[str, Any]]:
        if not self.lines.exists():
            return []
        out = []
        for text in self.lines.read_text().splitlines():
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:  # a line torn by a crash while it was written: not recorded
                continue
        return out

    def state(self) -> dict[str, RasterState]:
        """Each input's state, replayed from the manifest."""
        if not self.run_json.exists():
            raise RSSceneError(f"{self.dir} holds no run (no run.json)")
        run = json.loads(self.run_json.read_text())
        states = {r["key"]: RasterState(r["key"], r["path"]) for r in run["inputs"]}
        for ev in self.events():
            st = states.get(ev.get("raster", ""))
            if st is None:
                continue
            kind = ev.get("event")
            if kind == "planned":
                st.status, st.plan, st.shards_done, st.error = "planned", ev["plan"], {}, None
            elif kind == "shard" and st.plan is not None:
                if (self.parts / st.key / f"{ev['shard']:06d}.npz").exists() or st.status == "done":
                    st.shards_done[ev["shard"]] = ev
            elif kind in ("done", "failed"):
                st.status, st.result, st.error = kind, ev.get("result", {}), ev.get("error")
        return states

    def options(self) -> dict[str, Any]:
        return json.loads(self.run_json.read_text())["options"]
