"""Build the benchmark's synthetic large rasters by tiling a real scene.

The shared Sentinel-2 scene (930 x 947 px, 10 bands) is mirrored back and forth (so no seam is a hard edge)
until it fills ``--size`` x ``--size`` pixels, with the scene's own CRS and 10 m pixels extended from its
origin. Output is a tiled (256 x 256), deflate-compressed, pixel-interleaved GeoTIFF like the source,
written one block row at a time so the script itself needs little memory. The files go to ``bench-data/``
(gitignored): they are generated, never committed.

    python backend/scripts/make_bench_raster.py --size 8000 --out bench-data/s2_8000.tif
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window

SCENES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "scenes"
DEFAULT_SRC = SCENES / "sentinel2_aberystwyth_20210527_10band.tif"
BLOCK = 256


def mirror_index(n_out: int, n_src: int, start: int = 0) -> np.ndarray:
    """Source indices for output positions ``start..start+n_out`` when the source is mirrored end to end."""
    i = np.arange(start, start + n_out) % (2 * n_src)
    return np.where(i < n_src, i, 2 * n_src - 1 - i)


def make_raster(src_path: Path, out: Path, width: int, height: int) -> Path:
    with rasterio.open(src_path) as src:
        scene = src.read()  # the source scene is small (~18 MB); the output is streamed
        profile = src.profile.copy()
        profile.update(width=width, height=height, tiled=True, blockxsize=BLOCK, blockysize=BLOCK,
                       compress="deflate", predictor=2, interleave="pixel", BIGTIFF="IF_SAFER")
    cols = mirror_index(width, scene.shape[2])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.part")
    with rasterio.open(tmp, "w", **profile) as dst:
        for y in range(0, height, BLOCK):
            h = min(BLOCK, height - y)
            rows = mirror_index(h, scene.shape[1], y)
            dst.write(scene[:, rows][:, :, cols], window=Window(0, y, width, h))
    os.replace(tmp, out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--src", type=Path, default=DEFAULT_SRC, help="scene to tile (default: shared S2)")
    ap.add_argument("--size", type=int, default=8000, help="edge of the square output in pixels")
    ap.add_argument("--height", type=int, help="height when not square (default: --size)")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if not args.src.exists():
        print(f"make_bench_raster: source scene not found: {args.src}", file=sys.stderr)
        return 2
    path = make_raster(args.src, args.out, args.size, args.height or args.size)
    print(f"{path}: {args.size} x {args.height or args.size} px, {path.stat().st_size / 1e6:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
