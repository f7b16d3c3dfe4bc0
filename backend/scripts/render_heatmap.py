"""Render a heatmap GeoTIFF beside the RGB of the raster it explains, as a PNG (``make heatmap-picture``).

Left: the raster's true colour (2-98 % stretch per band); right: the same, greyed, under the heat (a colour
ramp, transparent where the heat is low or nodata), with the tile grid drawn faintly. Generated, never
committed:

    python backend/scripts/render_heatmap.py --raster scene.tif --rgb 3,2,1 --heatmap heat.tif --out pic.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import rasterio


def stretch(a: np.ndarray, valid: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a[valid], (2, 98)) if valid.any() else (0.0, 1.0)
    return np.clip((a - lo) / max(hi - lo, 1e-9), 0, 1)


def rgb_of(raster: str, bands: list[int], shape: tuple[int, int]) -> np.ndarray:
    with rasterio.open(raster) as ds:
        a = ds.read(bands, out_shape=(len(bands), *shape)).astype(np.float32)
        valid = a.min(0) > (ds.nodata if ds.nodata is not None else -np.inf)
    return np.stack([stretch(b, valid) for b in a], -1)


def render(raster: str, heatmap: str, bands: list[int], out: str, tile: int, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with rasterio.open(heatmap) as h:
        heat = h.read(1, masked=True)
        tags = h.tags()
    rgb = rgb_of(raster, bands, heat.shape)
    grey = rgb.mean(-1, keepdims=True).repeat(3, -1) * 0.8
    fig, axes = plt.subplots(1, 2, figsize=(13, 6.6), constrained_layout=True)
    axes[0].imshow(rgb)
    axes[0].set_title("true colour")
    axes[1].imshow(grey)
    shown = axes[1].imshow(np.ma.masked_less(heat, 0.02), cmap="inferno", vmin=0, vmax=1, alpha=0.75,
                           interpolation="nearest")
    for k in range(0, max(heat.shape) + 1, tile):
        axes[1].axhline(k - 0.5, color="white", lw=0.2, alpha=0.4)
        axes[1].axvline(k - 0.5, color="white", lw=0.2, alpha=0.4)
    axes[1].set_xlim(-0.5, heat.shape[1] - 0.5)
    axes[1].set_ylim(heat.shape[0] - 0.5, -0.5)
    norm = tags.get("HEATMAP_NORMALISATION", "?")
    cells = tags.get("HEATMAP_CELLS_PER_TILE", "?")
    axes[1].set_title(f"{tags.get('HEATMAP_METHOD', 'CAM')} heat ({cells} cells per tile, {norm}-wide scale)"
                      if norm == "run" else f"heat ({cells} cells per tile, per-tile scale)")
    fig.colorbar(shown, ax=axes[1], shrink=0.7)
    for ax in axes:
        ax.set_axis_off()
    fig.suptitle(title)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raster", required=True)
    ap.add_argument("--heatmap", required=True)
    ap.add_argument("--rgb", default="3,2,1", help="raster bands shown as red, green, blue (1-based)")
    ap.add_argument("--tile", type=int, default=64, help="tile size in raster pixels (for the grid lines)")
    ap.add_argument("--title", default="")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    print(render(args.raster, args.heatmap, [int(b) for b in args.rgb.split(",")], args.out, args.tile,
                 args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
