"""``make experiments``: one study per paper, each method against its own paper's baseline with the same
budget, schedule, augmentation, split and image size, over several seeds (splits and inits), plus the
"defaults" table (every method with its dialog defaults). Writes Markdown, JSON and one plot per study.

    python backend/experiments/run.py --data ../shared/data --out build/experiments \
        [--profile quick|paper|smoke] [--only pskd] [--seeds 3]
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PROFILES, Ctx  # noqa: E402
from stats import Study, Table  # noqa: E402

EXPERIMENTS = {
    "ddrl-am": "exp_ddrl_am",
    "pskd": "exp_pskd",
    "scl": "exp_scl",
    "bwms": "exp_bwms",
    "pretrain": "exp_pretrain",
    "pretrain-aid": "exp_pretrain_aid",
    "defaults": "exp_defaults",
}
# Relative cost of one seed of each study on the quick profile (measured 2026-12-02): --jobs starts the
# longest first, so that the last job to finish is a short one.
COST = {"defaults": 10, "ddrl-am": 6, "pskd": 4, "pretrain": 3, "pretrain-aid": 2, "scl": 2, "bwms": 1.5}


def parse(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(Path(__file__).resolve().parents[3] / "shared" / "data"))
    ap.add_argument("--out", default="build/experiments")
    ap.add_argument("--only", action="append", choices=sorted(EXPERIMENTS))
    ap.add_argument("--profile", default="quick", choices=sorted(PROFILES),
                    help="quick (default): ~60 min on a 2-core CPU; paper: 224 px and the papers' epochs, "
                    "for a GPU; smoke: a few images, one epoch, checks the harness only")
    ap.add_argument("--quick", action="store_true", help="old name of --profile smoke")
    ap.add_argument("--seeds", type=int, default=0, help="number of seeds (default: the profile's)")
    ap.add_argument("--seed-list", help="comma-separated seeds to run here (e.g. one process per seed; "
                    "--merge joins their results.json into one table)")
    ap.add_argument("--methods", help="defaults study: only these methods (comma-separated; pretrain, the "
                    "baseline, always runs); --merge joins the rows with another run's")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 is fastest on a busy CPU)")
    ap.add_argument("--jobs", type=int, default=1, help="run the studies' seeds as this many processes at "
                    "once (each with --threads threads; one per CPU core), then join them as --merge does")
    ap.add_argument("--device", default="cpu", help="training device (cpu, cuda); evaluation runs on the CPU")
    ap.add_argument("--merge", nargs="+", metavar="RESULTS_JSON",
                    help="train nothing: combine these results.json files (in this order) into --out")
    ap.add_argument("--standalone", action="append", default=[], help=argparse.SUPPRESS)  # see register()
    return ap.parse_args(argv)


def register(argv: list[str]) -> None:
    """``--standalone KEY=MODULE`` (given by :func:`standalone`, and so passed on to ``--jobs``' processes):
    a study script outside EXPERIMENTS, registered before the options are checked."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--standalone", action="append", default=[])
    for value in pre.parse_known_args(argv)[0].standalone:
        key, module = value.split("=", 1)
        EXPERIMENTS[key] = module


def parallel(args: argparse.Namespace, argv: list[str], out: Path) -> int:
    """``--jobs N``: one process per (study, seed), N at a time, each writing under ``out/parts/``; then their
    results joined into ``out`` in the usual study order. A failed part fails the run (its log is named)."""
    ctx = Ctx(Path(args.data), out, PROFILES["smoke" if args.quick else args.profile], args.seeds,
              seed_list=[int(v) for v in args.seed_list.split(",")] if args.seed_list else None)
    names = args.only or list(EXPERIMENTS)
    units = [(name, seed) for name in names for seed in ctx.for_study(name).seeds]
    keep = [a for a in _without(argv, "--jobs", "--seed-list", "--out", "--only") if a != "--quick"]
    if args.quick:
        keep += ["--profile", "smoke"]

    def one(unit: tuple[str, int]) -> tuple[tuple[str, int], int, Path]:
        name, seed = unit
        part = out / "parts" / f"{name}-s{seed}"
        part.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, str(Path(__file__).resolve()), *keep, "--only", name, "--seed-list", str(seed),
               "--out", str(part)]
        with open(part / "log", "w") as log:
            rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT).returncode
        log_path = part / "log"
        state = "done" if rc == 0 else f"FAILED (exit {rc}), see {log_path}"
        print(f"== {name} seed {seed}: {state}", file=sys.stderr, flush=True)
        return unit, rc, part

    t0 = time.perf_counter()
    order = sorted(units, key=lambda u: -COST.get(u[0], 1))
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        done = list(pool.map(one, order))
    failed = [f"{n} seed {s}: {p / 'log'}" for (n, s), rc, p in done if rc != 0]
    if failed:
        print("failed parts: " + "; ".join(failed), file=sys.stderr)
        return 1
    parts = [str(out / "parts" / f"{n}-s{s}" / "results.json") for n, s in units]  # study order, then seed
    header = make_header(ctx.profile.name, seeds_text(ctx, names), args.device, args.threads) + (
        f"\nRun as {args.jobs} processes at once (`--jobs {args.jobs}`: one study seed each, {args.threads} "
        "thread(s) each); train_s and tiles/s are measured beside the other processes.\n")
    return merge(parts, out, seconds=time.perf_counter() - t0, header=header)


def _without(argv: list[str], *flags: str) -> list[str]:
    """``argv`` without the given options and their values (``--x v`` and ``--x=v``)."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in flags:
            skip = True
        elif not any(a.startswith(f + "=") for f in flags):
            kept.append(a)
    return kept


def merge(files: list[str], out: Path, seconds: float | None = None, header: str = "") -> int:
    """One results.md / results.json / plots from the results of several runs (e.g. run in parallel)."""
    studies: list = []
    by_key: dict[str, Study] = {}
    longest, first = 0.0, ""
    for f in files:
        d = json.loads(Path(f).read_text())
        longest = max(longest, d.get("seconds", 0.0))  # runs merged here ran in parallel
        first = first or d.get("header", "")
        for t in d["tables"]:
            if "key" not in t:
                studies.append(Table(**t))
            elif t["key"] in by_key:  # the same study run with other seeds elsewhere: join the seeds
                by_key[t["key"]].join(Study.from_dict(t))
            else:
                by_key[t["key"]] = Study.from_dict(t)
                studies.append(by_key[t["key"]])
    for key, study in by_key.items():  # readings from the joined numbers (a module's reading(study))
        if key in EXPERIMENTS:
            fn = getattr(importlib.import_module(EXPERIMENTS[key]), "reading", None)
            study.reading = fn(study) if fn is not None else study.reading
    for module in dict.fromkeys(EXPERIMENTS.values()):  # a module whose reading joins several studies
        fn = getattr(importlib.import_module(module), "readings", None)
        for key, text in (fn(by_key) if fn is not None else {}).items():
            by_key[key].reading = text
    write(out, header or first or "# RS Scene benchmark\n", studies, longest if seconds is None else seconds)
    print(f"merged {len(studies)} tables from {len(files)} files into {out / 'results.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    register(sys.argv[1:] if argv is None else list(argv))
    args = parse(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.merge:
        return merge(args.merge, out)
    if args.jobs > 1:
        return parallel(args, sys.argv[1:] if argv is None else list(argv), out)
    profile = PROFILES["smoke" if args.quick else args.profile]
    seed_list = [int(v) for v in args.seed_list.split(",")] if args.seed_list else None
    ctx = Ctx(Path(args.data), out, profile, args.seeds, args.device, seed_list,
              args.methods.split(",") if args.methods else None)
    names = args.only or list(EXPERIMENTS)
    header = make_header(profile.name, seeds_text(ctx, names), args.device, args.threads)
    studies, t0 = [], time.perf_counter()
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        result = importlib.import_module(EXPERIMENTS[name]).run(ctx.for_study(name))
        for study in [r for r in (result if isinstance(result, list) else [result]) if r is not None]:
            studies.append(study)
            print(study.markdown(), flush=True)
            write(out, header, studies, time.perf_counter() - t0)
    print(f"total {time.perf_counter() - t0:.0f} s; wrote {out / 'results.md'} and {out / 'results.json'}")
    return 0


def seeds_text(ctx: Ctx, names: list[str]) -> str:
    """'5 seeds' or '5 seeds (defaults: 3)': how many seeds the studies run here."""
    counts = {name: len(ctx.for_study(name).seeds) for name in names}
    common = Counter(counts.values()).most_common(1)[0][0]
    other = ", ".join(f"{n}: {c}" for n, c in counts.items() if c != common)
    return f"{common} seeds" + (f" ({other})" if other else "")


def make_header(profile: str, seeds: str, device: str, threads: int) -> str:
    return (
        f"# RS Scene benchmark\n\nProfile `{profile}`"
        f"{' (HARNESS CHECK: numbers meaningless)' if profile == 'smoke' else ''}, "
        f"{seeds} (seed s draws split s and initialises with s), training on "
        f"{device}, CPU {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{threads} thread(s). Each row: mean over seeds with the t-based 95 % interval of the mean; "
        "'paired diff' is the row minus the study's baseline on the same seeds (same split, same init), "
        "with its own 95 % interval, in accuracy points. A goal written '>' is met when that interval lies "
        "above 0, '>=' when it reaches 0 (not worse within the noise).\n"
    )


def standalone(key: str, module: str) -> int:
    """A study script run on its own (``python exp_x.py --out DIR ...``): register it and run it alone."""
    return main(["--standalone", f"{key}={module}", "--only", key, *sys.argv[1:]])


def write(out: Path, header: str, studies: list, seconds: float) -> None:
    parts = [header]
    for s in studies:
        md = s.markdown()
        plot = s.plot(out / f"plot_{s.key}.png") if hasattr(s, "plot") else None
        parts.append(md + (f"\n![{s.title}](plot_{s.key}.png)\n" if plot else ""))
    (out / "results.md").write_text("\n".join(parts) + f"\nTotal: {seconds:.0f} s\n")
    (out / "results.json").write_text(json.dumps(
        {"seconds": round(seconds, 1), "header": header, "tables": [s.to_dict() for s in studies]}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
