"""The benchmark's results as Markdown: the table the README's performance section shows."""

from __future__ import annotations

from typing import Any

_LABELS = {"forward": "(a) model forward only, tiles in memory", "classify": "(b) classify -> GeoPackage",
           "heatmap": "(c) classify + Grad-CAM heatmap GeoTIFF"}


def markdown(res: dict[str, Any]) -> str:
    w, m = res["workload"], res["machine"]
    lines = [
        f"Workload: `{w['raster']}`, {w['width']} x {w['height']} px ({w['area_km2']:.0f} km²), "
        f"{w['tiles']} tiles of {w['tile_px']} px, model `{w['model']}` ({w['architecture']}, "
        f"{w['input_size']} px input), "
        f"medians of {res['repeats']} interleaved repeats.",
        f"Machine: {m['cpu']}, {m['cores']} cores" + (f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU")
        + f"; torch {m['torch']}; device `{res['settings'].get('device', 'auto')}`. Load average "
        f"{res['load']['loadavg_start'][0]} at start, {res['load']['loadavg_end'][0]} at end "
        f"(shared machine); bench wall time {res['load']['wall_s']} s.",
        "",
        "| mode | runtime | tiles/s | km²/s | median s | peak RSS MB |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for mode, s in res["modes"].items():
        lines.append(f"| {_LABELS[mode]} | {s['runtime']} | {s['tiles_per_s']:.1f} | {s['km2_per_s']:.2f} | "
                     f"{s['seconds_median']:.1f} | {s['peak_rss_mb']:.0f} |")
    if "flat" in res:
        f = res["flat"]
        lines.append(f"| (b) on {f['width']} x {f['height']} px ({f['pixels_ratio']:g}x pixels) | | "
                     f"{f['tiles_per_s']:.1f} | {f['km2_per_s']:.2f} | | {f['peak_rss_mb']:.0f} |")
    if "runtimes" in res:
        rt = res["runtimes"]
        lines += ["", "Forward pass by runtime, same tensors (agreement and |Δp| against PyTorch NCHW):", "",
                  "| runtime | tiles/s | class agreement | max abs prob diff |", "|---|---:|---:|---:|"]
        names = {"torch_nchw": "PyTorch eager, NCHW", "torch": "PyTorch eager, channels_last",
                 "onnx": "ONNX Runtime (CPU)"}
        for k, label in names.items():
            if k in rt:
                lines.append(f"| {label} | {rt[k]['tiles_per_s']:.1f} | {rt[k]['class_agreement']:.4f} | "
                             f"{rt[k]['max_abs_prob_diff']:.1e} |")
    lines += ["", "| goal | measured | target | met |", "|---|---:|---:|---|"]
    for k, g in res["goals"].items():
        met = "yes" if g["met"] else "no"
        lines.append(f"| {k.replace('_', ' ')} | {g['value']:.3f} | {g['goal']} | {met} |")
    if "eta" in res:
        e = res["eta"]
        lines += ["", f"ETA shown before a run (calibration of {e['calibration_s']:.0f} s): "
                  f"{e['estimate_s']:.0f} s; measured {e['measured_s']:.0f} s ({e['error']:+.0%})."]
    return "\n".join(lines) + "\n"
