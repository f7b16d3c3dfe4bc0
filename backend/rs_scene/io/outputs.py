"""Where a run may write: never over its input, never two outputs on one file, never over a file that is not
an earlier output of this tool unless asked to; and the recognisable temporary names outputs are written
under (``.<name>.rs-scene-tmp-<pid>-<random><suffix>``), so a later run on the same output can remove the
ones a killed run left behind.

An *earlier output of this tool* is a GeoPackage whose ``gpkg_metadata`` holds an RS Scene run record
(:data:`RUN_RECORD_URI`), a GeoTIFF tagged ``RS_SCENE_OUTPUT`` (heatmap, class raster; or, written before
the tag, with the heatmap's band description or the class raster's ``CLASS_<i>`` tags) or an RS Scene model
file (a ``torch.save`` zip whose card has the ``rs-scene-model/1`` format).
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterable
from pathlib import Path

from ..errors import RSSceneError

RUN_RECORD_URI = "https://github.com/rs-scene/rs-scene/run-record"
OUTPUT_TAG = "RS_SCENE_OUTPUT"
TMP_MARK = ".rs-scene-tmp-"
OLD_HEATMAP_BAND = "Grad-CAM attention (0-1, per tile)"
_LIVE: set[str] = set()  # temporary paths this process is writing now


def temp_path(target: Path) -> Path:
    """A fresh temporary name beside ``target`` that says whose it is (this process) and what for."""
    remove_stale_temps(target)
    tmp = target.with_name(f".{_short(target)}{TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")
    _LIVE.add(str(tmp))
    return tmp


def _short(target: Path) -> str:
    """The target's name as temp names carry it: cut so that the temp name stays within 255 bytes."""
    return target.name.encode()[:160].decode(errors="ignore")


def release_temp(tmp: Path) -> None:
    _LIVE.discard(str(tmp))


def remove_live_temps() -> None:
    """Before a forced exit: remove the temporary files this process is still writing (and sidecars)."""
    for tmp in list(_LIVE):
        for path in (tmp, *(tmp + s for s in ("-journal", "-wal", "-shm", ".aux.xml"))):
            try:
                os.unlink(path)
            except OSError:
                pass
        _LIVE.discard(tmp)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(target: Path) -> list[Path]:
    """Remove the temporary files (and their -journal, -wal, .aux.xml sidecars) of earlier runs on ``target``
    whose process is gone; a live run's are left alone. Returns what was removed."""
    prefix = f".{_short(target)}{TMP_MARK}"
    removed = []
    try:
        names = os.listdir(target.parent)
    except OSError:
        return removed
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        path = target.parent / name
        pid = int(pid_text)
        ours_but_dead = pid == os.getpid() and not any(name.startswith(Path(p).name) for p in _LIVE)
        if (pid != os.getpid() and not _alive(pid)) or ours_but_dead:
            try:
                path.unlink()
                removed.append(path)
            except OSError:
                pass
    return removed


def _is_our_gpkg(path: Path) -> bool:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        row = con.execute("SELECT 1 FROM gpkg_metadata WHERE md_standard_uri = ? LIMIT 1",
                          (RUN_RECORD_URI,)).fetchone()
        return row is not None
    except sqlite3.Error:
        return False
    finally:
        con.close()


def _is_our_tiff(path: Path) -> bool:
    import rasterio

    try:
        with rasterio.open(path) as ds:
            if ds.driver != "GTiff":
                return False
            # the tag, or what outputs of versions before it carried: the heatmap's band description, the
            # class raster's class-name tags
            return (OUTPUT_TAG in ds.tags() or ds.descriptions[:1] == (OLD_HEATMAP_BAND,)
                    or (ds.count == 1 and ds.dtypes[0] == "uint8" and "CLASS_0" in ds.tags(1)))
    except Exception:  # not a raster rasterio can open: not ours
        return False


def _is_our_model(path: Path) -> bool:
    from ..card import read_card

    try:
        read_card(path)
    except Exception:  # any reason it does not load as a model file: not ours
        return False
    return True


def is_our_output(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is an earlier output of this tool (see the module's docstring)."""
    p = Path(path)
    if not p.is_file():  # a FIFO or a device is never ours (and opening a FIFO would block)
        return False
    try:
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head.startswith(b"SQLite format 3\x00"):
        return _is_our_gpkg(p)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _is_our_tiff(p)
    if head.startswith(b"PK\x03\x04"):
        return _is_our_model(p)
    return False


def _real_files(path: str) -> list[str]:
    """The local files a (possibly GDAL virtual) input path reads: ``/vsizip/a.zip/x.tif`` reads ``a.zip``."""
    rest = path
    while rest.startswith("/vsi") and "/" in rest[1:]:
        rest = rest[rest.index("/", 1):]
    parts = rest.split("/")
    cands = ["/".join(parts[: i + 1]) for i in range(1, len(parts))] if rest.startswith("/") else [rest]
    return [os.path.realpath(c) for c in {*cands, rest} if c and os.path.isfile(c)]


def check_outputs(outputs: dict[str, str | None], inputs: Iterable[str | None], overwrite: bool) -> None:
    """Refuse an output that is one of the inputs, two outputs on one file, and an existing file that is not
    an earlier output of this tool unless ``overwrite``. Keys of ``outputs`` name the option or field."""
    given = {k: v for k, v in outputs.items() if v}
    inputs_real = {r for i in inputs if i for r in _real_files(str(i))}
    seen: dict[str, str] = {}
    for key, value in given.items():
        real = os.path.realpath(value)
        if real in seen:
            raise RSSceneError(f"{seen[real]} and {key} name the same file ({value}): "
                               "each output needs its own")
        seen[real] = key
        if real in inputs_real:
            raise RSSceneError(f"{key} {value} is an input of this run; writing it would destroy it: "
                               "choose another file")
        if os.path.isdir(value):
            raise RSSceneError(f"cannot write {key} {value}: it is a folder")
        if os.path.exists(value) and not os.path.isfile(value):
            raise RSSceneError(f"cannot write {key} {value}: it is not a regular file (a device, FIFO or "
                               "socket), which no output may replace")
        if os.path.lexists(value) and not overwrite and not is_our_output(value):
            raise RSSceneError(f"{key} {value} exists and is not an earlier RS Scene output; "
                               "give --overwrite (service: \"overwrite\": true) to replace it")
