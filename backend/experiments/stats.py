"""Statistics and reporting of the benchmark: mean and t-based 95 % interval over seeds, the paired
difference of two rows over the same seeds, goals stated as met or not, Markdown, JSON and one bar plot per
study (matplotlib, bars = means, whiskers = 95 % intervals)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as st


@dataclass
class Interval:
    mean: float
    lo: float
    hi: float
    n: int

    def text(self, points: bool = False) -> str:
        """``0.812 [0.780, 0.844]``, or in OA points with a sign (``+3.1 [-0.4, +6.6]``)."""
        if math.isnan(self.mean):
            return "n/a"
        if self.n < 2:  # one seed: no spread known, no interval
            return f"{self.mean * 100:+.1f} (1 seed)" if points else f"{self.mean:.3f} (1 seed)"
        if points:
            return f"{self.mean * 100:+.1f} [{self.lo * 100:+.1f}, {self.hi * 100:+.1f}]"
        return f"{self.mean:.3f} [{self.lo:.3f}, {self.hi:.3f}]"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "lo": self.lo, "hi": self.hi, "n": self.n}


def interval(values: list[float], level: float = 0.95) -> Interval:
    """Mean and two-sided Student-t interval of the mean over seeds (n - 1 degrees of freedom); with one
    value the interval is that value (no spread known)."""
    v = np.asarray([x for x in values if x is not None and not math.isnan(x)], dtype=float)
    if len(v) == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    m = float(v.mean())
    if len(v) == 1:
        return Interval(m, m, m, 1)
    half = float(st.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return Interval(m, m - half, m + half, len(v))


def paired(a: dict[int, float], b: dict[int, float]) -> Interval:
    """Interval of ``a - b`` over the seeds both have (same split and init per seed)."""
    common = sorted(set(a) & set(b))
    return interval([a[s] - b[s] for s in common])


@dataclass
class Goal:
    text: str  # e.g. "PSKD student > student alone"
    a: str
    b: str
    strict: bool  # '>': met when the whole interval of a - b is above 0; '>=': met when it reaches 0
    diff: Interval

    @property
    def met(self) -> bool:
        if self.diff.n < 2:
            return False  # undecided with one seed
        return self.diff.lo > 0 if self.strict else self.diff.hi >= 0

    def line(self) -> str:
        verdict = "**met**" if self.met else "**not met**" if self.diff.n >= 2 else "**undecided** (1 seed)"
        rule = "interval above 0" if self.strict else "interval reaches 0: not worse within the noise"
        return (f"- {self.text}: {verdict}; {self.a} minus {self.b} = {self.diff.text(points=True)} OA "
                f"points (mean [95 % interval], n = {self.diff.n} seeds; rule: {rule})")

    def to_dict(self) -> dict[str, Any]:
        return {"goal": self.text, "a": self.a, "b": self.b, "strict": self.strict, "met": self.met,
                "diff": self.diff.to_dict()}


@dataclass
class Study:
    """One paper's table: rows of per-seed values of one metric, extra columns, a baseline row for the paired
    differences, and goals. ``add`` each (row, seed, value) as it is measured."""

    key: str
    title: str
    setup: str
    baseline: str = ""
    metric: str = "OA"
    values: dict[str, dict[int, float]] = field(default_factory=dict)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    goals: list[Goal] = field(default_factory=list)
    reading: str = ""
    seconds: float = 0.0

    def add(self, row: str, seed: int, value: float, **extra: Any) -> None:
        self.values.setdefault(row, {})[seed] = float(value)
        cols = self.extras.setdefault(row, {})
        for k, v in extra.items():
            cols.setdefault(k, []).append(v)

    def summary(self, row: str) -> Interval:
        return interval(list(self.values[row].values()))

    def diff(self, a: str, b: str) -> Interval:
        return paired(self.values[a], self.values[b])

    def goal(self, text: str, a: str, b: str, strict: bool) -> Goal:
        g = Goal(text, a, b, strict, self.diff(a, b))
        self.goals.append(g)
        return g

    def extra(self, row: str, col: str) -> Any:
        """The mean of a numeric extra column over seeds (its single value when constant)."""
        vals = self.extras.get(row, {}).get(col, [])
        if not vals:
            return ""
        if all(isinstance(v, (int, float)) for v in vals):
            m = float(np.mean(vals))
            return int(round(m)) if all(isinstance(v, int) for v in vals) or m > 100 else round(m, 3)
        return vals[0]

    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.extras.values():
            cols += [c for c in row if c not in cols]
        return cols

    def markdown(self) -> str:
        cols = self.columns()
        base = f" vs {self.baseline}" if self.baseline else ""
        head = ["row", f"{self.metric} mean [95 % CI]", f"paired diff{base}, points", "seeds", *cols]
        lines = [f"## {self.title}", "", self.setup, "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]
        for row in self.values:
            d = self.diff(row, self.baseline).text(points=True) if self.baseline and row != self.baseline \
                else ""
            cells = [row, self.summary(row).text(), d, str(self.summary(row).n),
                     *(str(self.extra(row, c)) for c in cols)]
            lines.append("| " + " | ".join(cells) + " |")
        if self.goals:
            lines += ["", "Goals:", *(g.line() for g in self.goals)]
        lines += ["", f"Reading: {self.reading}", "", f"({self.seconds:.0f} s)", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "setup": self.setup, "metric": self.metric,
                "baseline": self.baseline,
                "rows": {r: {"per_seed": {str(s): v for s, v in vals.items()},
                             **self.summary(r).to_dict(),
                             **({"diff": self.diff(r, self.baseline).to_dict()}
                                if self.baseline and r != self.baseline else {}),
                             "extra": self.extras.get(r, {})} for r, vals in self.values.items()},
                "goals": [g.to_dict() for g in self.goals], "reading": self.reading,
                "seconds": round(self.seconds, 1)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Study:
        """The study written by :meth:`to_dict` (``run.py --merge`` rebuilds tables from results.json)."""
        study = cls(d["key"], d["title"], d["setup"], d.get("baseline", ""), d.get("metric", "OA"),
                    reading=d.get("reading", ""), seconds=d.get("seconds", 0.0))
        for row, r in d["rows"].items():
            study.values[row] = {int(k): v for k, v in r["per_seed"].items()}
            study.extras[row] = dict(r.get("extra", {}))
        for g in d.get("goals", []):
            study.goal(g["goal"], g["a"], g["b"], g["strict"])
        return study

    def join(self, other: Study) -> None:
        """Add ``other``'s seeds or rows (the same study run in another process); goals are re-evaluated."""
        for row, vals in other.values.items():
            if set(vals) <= set(self.values.get(row, {})):
                continue  # seeds already here (e.g. the baseline rerun beside a new row): keep the first
            self.values.setdefault(row, {}).update(vals)
            cols = self.extras.setdefault(row, {})
            for k, v in other.extras.get(row, {}).items():
                cols.setdefault(k, []).extend(v)
        self.seconds = max(self.seconds, other.seconds)
        known = {g.text for g in self.goals}
        goals = self.goals + [g for g in other.goals if g.text not in known]  # rows run in another process
        self.goals = [Goal(g.text, g.a, g.b, g.strict, self.diff(g.a, g.b)) for g in goals]

    def plot(self, path: Path) -> Path | None:
        """Bars of the means with 95 % interval whiskers, one bar per row; None without matplotlib."""
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:
            return None
        rows = list(self.values)
        s = [self.summary(r) for r in rows]
        fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(rows) + 1.5), 3.6))
        err = np.array([[m.mean - m.lo for m in s], [m.hi - m.mean for m in s]])
        ax.bar(range(len(rows)), [m.mean for m in s], yerr=err, capsize=4, color="#4c78a8")
        ax.set_xticks(range(len(rows)), rows, rotation=25, ha="right", fontsize=8)
        ax.set_ylabel(f"{self.metric} (mean, 95 % CI over seeds)")
        ax.set_title(self.title, fontsize=9)
        fig.tight_layout()
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


@dataclass
class Table:
    """The older single-run table (kept for experiment modules not yet moved to :class:`Study`)."""

    title: str
    setup: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    reading: str = ""
    seconds: float = 0.0

    def markdown(self) -> str:
        def cell(v: Any) -> str:
            return f"{v:.3f}" if isinstance(v, float) else str(v)

        lines = [f"## {self.title}", "", self.setup, "", "| " + " | ".join(self.columns) + " |",
                 "|" + "---|" * len(self.columns)]
        lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in self.rows]
        lines += ["", f"Reading: {self.reading}", "", f"({self.seconds:.0f} s)", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "setup": self.setup, "columns": self.columns, "rows": self.rows,
                "reading": self.reading, "seconds": round(self.seconds, 1)}
