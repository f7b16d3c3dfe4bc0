"""Training-step throughput of the backbones the methods train, NCHW against channels-last input.

Each row builds the backbone with a linear head, feeds it one fixed random batch (the experiments' batch of
32 at their image size) and times full SGD steps (forward, cross-entropy, backward, update) after two
warm-up steps, the two memory formats interleaved ``--repeats`` times so that a drift of the machine hits
both alike. Channels-last is what the trainer feeds since ``normalize`` returns it. Also the inference
forward of the same batch (what evaluation and the feature caches run). Results: JSON and Markdown.

The NCHW column is the layout of batches built by interpolation or concatenation (SCL's views, DDRL-AM's
image + map stream before 4942ca4); the data sets themselves load channels-last in memory (decoded HWC images
permuted), and the trainer's crop / flip / rotation keep that layout, so most training was already there.

    .venv/bin/python backend/scripts/bench_train.py --out build/bench-train [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from rs_scene.models.registry import create_backbone

ROWS = [("efficientnet_lite0", 3, 64), ("efficientnet_lite0", 3, 96), ("efficientnet_lite2", 3, 64),
        ("mobilenet_v3_small", 3, 64), ("resnet18", 3, 64), ("bwms_efficientnet_lite0", 10, 64)]


def _net(name: str, in_chans: int) -> nn.Module:
    kwargs = {"bands": [f"b{i}" for i in range(in_chans)]} if name.startswith("bwms") else {}
    return create_backbone(name, in_chans=in_chans, **kwargs)


def _pooled(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
    f = net.forward_features(x)
    return f.mean((2, 3)) if f.dim() == 4 else f


def time_steps(name: str, in_chans: int, size: int, channels_last: bool, steps: int, batch: int) -> tuple[
        float, float]:
    """Seconds per training step and per inference forward of one batch."""
    torch.manual_seed(0)
    net = _net(name, in_chans)
    with torch.no_grad():
        width = _pooled(net.eval(), torch.zeros(1, in_chans, size, size)).shape[1]
    head = nn.Linear(width, 30)
    x, y = torch.randn(batch, in_chans, size, size), torch.randint(0, 30, (batch,))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=1e-3, momentum=0.9)
    net.train()

    def step() -> None:
        loss = nn.functional.cross_entropy(head(_pooled(net, x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    train_s = (time.perf_counter() - t) / steps
    net.eval()
    with torch.inference_mode():
        _pooled(net, x)
        t = time.perf_counter()
        for _ in range(steps):
            _pooled(net, x)
    return train_s, (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the experiments run 1 a job)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for name, chans, size in ROWS:
        got: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for _ in range(args.repeats):
            for cl in (False, True):
                got[cl].append(time_steps(name, chans, size, cl, args.steps, args.batch))
        med = {cl: (statistics.median(t for t, _ in v), statistics.median(f for _, f in v))
               for cl, v in got.items()}
        rows.append({"backbone": name, "bands": chans, "size": size, "batch": args.batch,
                     "train_step_s": {"nchw": med[False][0], "channels_last": med[True][0]},
                     "forward_s": {"nchw": med[False][1], "channels_last": med[True][1]},
                     "train_speedup": med[False][0] / med[True][0],
                     "forward_speedup": med[False][1] / med[True][1]})
        print(json.dumps(rows[-1]), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"threads": args.threads, "steps": args.steps, "repeats": args.repeats, "torch": torch.__version__}
    (out / "bench-train.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [f"Training step and inference forward, batch {args.batch}, {args.threads} thread(s), median of "
             f"{args.repeats} x {args.steps} steps, torch {torch.__version__}", "",
             "| backbone | bands | px | train step NCHW s | channels-last s | speed-up | forward NCHW s | "
             "channels-last s | speed-up |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t, f = r["train_step_s"], r["forward_s"]
        lines.append(f"| {r['backbone']} | {r['bands']} | {r['size']} | {t['nchw']:.3f} | "
                     f"{t['channels_last']:.3f} | "
                     f"{r['train_speedup']:.2f}x | {f['nchw']:.3f} | {f['channels_last']:.3f} | "
                     f"{r['forward_speedup']:.2f}x |")
    (out / "bench-train.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
