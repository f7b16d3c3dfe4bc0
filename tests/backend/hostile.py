"""Shared by the hostile-input tests: folder snapshots (nothing outside the requested outputs may change) and
waiting for a run's temporary files (a run is mid-write)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

TMP_MARK = ".rs-scene-tmp-"


def snapshot(folder: Path) -> dict[str, tuple[int, str]]:
    """Every file under ``folder`` with its size and content hash."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = (p.stat().st_size, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def changed(before: dict[str, tuple[int, str]], after: dict[str, tuple[int, str]]) -> set[str]:
    return {k for k in set(before) | set(after) if before.get(k) != after.get(k)}


def temps(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if TMP_MARK in p.name)


def wait_for_temps(folder: Path, proc: object, timeout: float = 120) -> list[Path]:
    """Wait until a run writes its temporary outputs in ``folder`` (the process must stay alive)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        found = temps(folder)
        if found:
            return found
        assert proc.poll() is None, "the run ended before it started writing"  # type: ignore[attr-defined]
        time.sleep(0.1)
    raise AssertionError(f"no temporary output appeared in {folder} within {timeout} s")
