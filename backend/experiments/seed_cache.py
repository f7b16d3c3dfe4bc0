"""Per-seed results of an experiment kept as JSON under ``out/cache``, keyed by the experiment's settings:
a run that stops keeps the seeds it finished, and seeds can run in separate processes (then one more run
with all seeds only reads them). Delete ``out/cache`` to recompute."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from common import Ctx


def per_seed(ctx: Ctx, name: str, settings: dict[str, Any], seed: int,
             compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``compute()`` (JSON-able) for this seed, or what an earlier run with the same settings stored."""
    text = json.dumps({"profile": ctx.profile.name, **settings}, sort_keys=True, default=str)
    key = hashlib.sha1(text.encode()).hexdigest()[:10]
    path = ctx.out / "cache" / f"{name}-{key}-seed{seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    result = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, default=float))  # numpy scalars
    tmp.replace(path)
    return result
