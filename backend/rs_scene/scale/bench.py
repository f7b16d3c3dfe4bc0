"""``make bench-scale``: classify-many on a local Ray cluster with 1 and 2 model actors against single-process
``classify`` of the same rasters: wall time, tiles/s with and without the start-up, peak memory (PSS of the
whole process tree, so Ray's shared object store is counted once) and Ray's scheduling overhead per shard
(the slope of the processing time over the number of shards)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

S2_BANDS = "B02,B03,B04,B05,B06,B07,B08,B8A,B11,B12"
OPTS = ["--model", "sentinel2-eurosat", "--bands", S2_BANDS, "--input-scale", "1000"]


def tree_pss(root: int) -> int:
    """Bytes of PSS of ``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                ppid = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d))
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def measured(cmd: list[str]) -> dict[str, Any]:
    """Run ``cmd``; its wall time and the peak PSS of its process tree, sampled every 0.2 s."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak, stop = [0], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_pss(proc.pid))
            stop.wait(0.2)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    out, err = proc.communicate()
    stop.set()
    th.join()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"wall_s": round(time.perf_counter() - t0, 2), "peak_pss_mb": round(peak[0] / 2**20, 1),
            "stdout": out}


def single(rasters: list[Path], work: Path, heat: list[str]) -> dict[str, Any]:
    walls, inner, peak, tiles = 0.0, 0.0, 0.0, 0
    for r in rasters:
        out = work / f"single-{r.stem}.gpkg"
        m = measured([sys.executable, "-m", "rs_scene.cli", "classify", str(r), *OPTS, "--out", str(out),
                      "--class-raster", str(out.with_suffix(".tif")), *heat, "--json"])
        res = json.loads(m["stdout"])
        walls, inner, tiles = walls + m["wall_s"], inner + res["seconds"], tiles + res["tiles_total"]
        peak = max(peak, m["peak_pss_mb"])
    return {"mode": "classify, one process per raster", "tiles": tiles, "wall_s": round(walls, 2),
            "work_s": round(inner, 2), "peak_pss_mb": peak}


def many(rasters: list[Path], work: Path, actors: int, shard_tiles: int, heat: list[str]) -> dict[str, Any]:
    out = work / f"many-a{actors}-s{shard_tiles}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    cmd = [sys.executable, "-m", "rs_scene.cli", "classify-many", *map(str, rasters), *OPTS, "--out-dir",
           str(out), "--actors", str(actors), "--cpus", str(actors + 1), "--shard-tiles", str(shard_tiles),
           "--json", *(["--heatmaps"] if heat else [])]
    m = measured(cmd)
    events = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    t_first = min(e["t"] for e in events if e["event"] == "planned")
    span = max(e["t"] for e in events if e["event"] == "done") - t_first
    shards = [e for e in events if e["event"] == "shard"]
    tiles = sum(e["result"]["tiles_total"] for e in events if e["event"] == "done")  # stdout has Ray's notes
    return {"mode": f"classify-many, {actors} actor(s), --shard-tiles {shard_tiles}", "actors": actors,
            "shards": len(shards), "tiles": tiles, "wall_s": m["wall_s"], "work_s": round(span, 2),
            "peak_pss_mb": m["peak_pss_mb"]}


def markdown(rows: list[dict[str, Any]], overhead: float, meta: str) -> str:
    head = "| mode | shards | tiles | wall s | tiles/s (wall) | work s | tiles/s (work) | peak PSS MB |"
    lines = [meta, "", head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['mode']} | {r.get('shards', '-')} | {r['tiles']} | {r['wall_s']} | "
                     f"{r['tiles'] / r['wall_s']:.1f} | {r['work_s']} | {r['tiles'] / r['work_s']:.1f} | "
                     f"{r['peak_pss_mb']} |")
    lines += ["", "Scheduling overhead per shard (1 actor, slope of work time over shards): "
              f"{overhead * 1000:.0f} ms"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--src", required=True, help="the raster copied (linked) --copies times")
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--work", default="bench-data/scale")
    ap.add_argument("--shard-tiles", type=int, default=45, help="shard size of the 1- and 2-actor runs")
    ap.add_argument("--fine-shards", type=int, default=15, help="the small shards of the overhead run")
    ap.add_argument("--heatmaps", action="store_true")
    ap.add_argument("--json", default="bench-scale.json")
    ap.add_argument("--markdown", default="bench-scale.md")
    args = ap.parse_args(argv)
    work = Path(args.work).resolve()
    (work / "rasters").mkdir(parents=True, exist_ok=True)
    rasters = []
    for k in range(args.copies):
        link = work / "rasters" / f"copy{k}.tif"
        if not link.exists():
            link.symlink_to(Path(args.src).resolve())
        rasters.append(link)
    heat = ["--heatmap", str(work / "single-heat.tif")] if args.heatmaps else []
    rows = [single(rasters, work, heat)]
    rows += [many(rasters, work, a, args.shard_tiles, heat) for a in (1, 2)]
    fine = many(rasters, work, 1, args.fine_shards, heat)
    overhead = (fine["work_s"] - rows[1]["work_s"]) / max(fine["shards"] - rows[1]["shards"], 1)
    rows.append(fine)
    meta = (f"{args.copies} x {Path(args.src).name}, heatmaps {'on' if args.heatmaps else 'off'}, "
            f"{os.cpu_count()} CPU cores, load average at the end {os.getloadavg()[0]:.1f}")
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows, "overhead_per_shard_s": overhead},
                                          indent=1))
    Path(args.markdown).write_text(markdown(rows, overhead, meta))
    print(markdown(rows, overhead, meta))
    return 0


if __name__ == "__main__":
    sys.exit(main())
