"""``make experiments``: one table per paper, each method against its own paper's baseline, on the shared
real data with fixed seeds, sized to run within about an hour on a 2-core CPU. Writes Markdown and JSON.

    python backend/experiments/run.py --data ../shared/data --out build/experiments [--only scl] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import exp_bwms  # noqa: E402
import exp_ddrl_am  # noqa: E402
import exp_pretrain  # noqa: E402
import exp_pskd  # noqa: E402
import exp_scl  # noqa: E402
from common import Ctx  # noqa: E402

EXPERIMENTS = {
    "ddrl-am": exp_ddrl_am,
    "pskd": exp_pskd,
    "scl": exp_scl,
    "bwms": exp_bwms,
    "pretrain": exp_pretrain,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--out", default="build/experiments")
    ap.add_argument("--only", action="append", choices=sorted(EXPERIMENTS))
    ap.add_argument("--quick", action="store_true", help="a few images, one epoch: checks the harness only")
    ap.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy machine)"
    )
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ctx = Ctx(Path(args.data), out, args.quick, args.seed)
    header = (
        f"# RS Scene benchmark\n\nCPU only ({platform.processor() or platform.machine()}, torch "
        f"{torch.__version__}, {args.threads} thread(s)), seed {args.seed}"
        f"{', QUICK MODE: harness check, numbers meaningless' if args.quick else ''}. Image sizes, "
        "epochs and backbones are cut down from the papers' to fit about an hour on a 2-core CPU "
        "(each table says how); the data sets are the small real subsets in ../shared/data, so "
        "differences of a few points are within noise.\n"
    )
    tables, t0 = [], time.perf_counter()
    for name in args.only or list(EXPERIMENTS):
        print(f"== {name}", file=sys.stderr, flush=True)
        table = EXPERIMENTS[name].run(ctx)
        tables.append(table)
        print(table.markdown(), flush=True)
        write(out, header, tables, time.perf_counter() - t0)
    print(f"total {time.perf_counter() - t0:.0f} s; wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


def write(out: Path, header: str, tables: list, seconds: float) -> None:
    md = header + "\n" + "\n".join(t.markdown() for t in tables) + f"\nTotal: {seconds:.0f} s\n"
    (out / "results.md").write_text(md)
    (out / "results.json").write_text(
        json.dumps({"seconds": round(seconds, 1), "tables": [t.to_dict() for t in tables]}, indent=2)
    )


if __name__ == "__main__":
    sys.exit(main())
