"""Spatially blocked, stratified train / validation / held-out splits.

Samples are grouped in blocks (square groups of tiles, or one image each for a folder dataset); a block goes
wholly to one part. Every class gets at least one block in training and one in validation; when every class
lies in at least three blocks, a third, held-out part gets one too. The held-out part is evaluated once,
after training has chosen its epoch on validation, so its figure was never used for choosing.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

from ..errors import RSSceneError

VALIDATION_LABEL = "validation (used for early stopping)"
HELDOUT_LABEL = "held-out (never used for choosing)"
TRAINING_LABEL = "training tiles (the model's own polygons)"


def _class_blocks(blocks: Sequence[Hashable], labels: Sequence[int], n_classes: int) -> list[set[Hashable]]:
    out: list[set[Hashable]] = [set() for _ in range(n_classes)]
    for b, c in zip(blocks, labels, strict=True):
        out[c].add(b)
    return out


def too_few_blocks(blocks: Sequence[Hashable], labels: Sequence[int], classes: list[str], need: int
                   ) -> list[tuple[str, int]]:
    """``(class, blocks)`` of the classes that lie in fewer than ``need`` separate blocks."""
    per = _class_blocks(blocks, labels, len(classes))
    return [(classes[c], len(b)) for c, b in enumerate(per) if 0 < len(b) < need]


def blocked_split(blocks: Sequence[Hashable], labels: Sequence[int], classes: list[str], val_fraction: float,
                  test_fraction: float, seed: int = 0, unit: str = "block") -> tuple[list[str], str]:
    """``'train'`` / ``'val'`` / ``'test'`` per sample and a sentence saying what was done. Raises
    :class:`RSSceneError` naming each class that lies in fewer than two ``unit``s (it cannot be in both
    training and validation). The held-out part is made only when every class lies in three or more."""
    short = too_few_blocks(blocks, labels, classes, 2)
    if short:
        names = "; ".join(f"'{c}' lies in {n} {unit}" for c, n in short)
        advice = (" Draw polygons of that class in another part of the raster, or use smaller blocks "
                  "(--block)." if unit == "block" else "")
        raise RSSceneError(f"class {names}: the split needs every class in at least 2 separate {unit}s (one "
                           f"for training, one for validation).{advice}")
    test_short = too_few_blocks(blocks, labels, classes, 3) if test_fraction > 0 else []
    test = test_fraction if test_fraction > 0 and not test_short else 0.0
    part = _assign(blocks, labels, len(classes), val_fraction, test, seed)
    out = [part[b] for b in blocks]
    if test_fraction <= 0:
        note = "no held-out part asked for"
    elif test_short:
        note = ("no held-out part: " + ", ".join(f"'{c}' lies in {n} {unit}s" for c, n in test_short)
                + ", and a held-out part needs 3 per class")
    else:
        n_blocks = len({b for b in blocks if part[b] == "test"})
        note = f"held-out part: {out.count('test')} samples in {n_blocks} {unit}s"
    return out, note


def _assign(blocks: Sequence[Hashable], labels: Sequence[int], n_classes: int, val_fraction: float,
            test_fraction: float, seed: int) -> dict[Hashable, str]:
    """Blocks to parts: first one block per class to validation (and held-out), rarest classes first, never
    a class's last block that could still train; then blocks in random order until each part's share."""
    rng = np.random.default_rng(seed)
    keys = sorted(set(blocks), key=str)
    keys = [keys[i] for i in rng.permutation(len(keys))]
    members: dict[Hashable, np.ndarray] = {k: np.zeros(n_classes, dtype=int) for k in keys}
    for b, c in zip(blocks, labels, strict=True):
        members[b][c] += 1
    part: dict[Hashable, str] = {}
    parts = [("val", val_fraction)] + ([("test", test_fraction)] if test_fraction > 0 else [])

    def trainable(k: Hashable) -> bool:
        """Giving block ``k`` away leaves every class of it a block that still can train."""
        for c in np.flatnonzero(members[k]):
            if not any(members[o][c] and part.get(o, "train") == "train" and o != k for o in keys):
                return False
        return True

    order = sorted(range(n_classes), key=lambda c: sum(1 for k in keys if members[k][c]))
    for name, _ in parts:
        for c in order:
            if not any(members[k][c] for k, p in part.items() if p == name):
                pick = [k for k in keys if members[k][c] and k not in part and trainable(k)]
                if pick:  # the block where the class is the largest share of its tiles, to take few others
                    best = max(pick, key=lambda k: members[k][c] / members[k].sum())
                    part[best] = name
    total = len(blocks)
    for name, share in parts:
        n = sum(int(members[k].sum()) for k, p in part.items() if p == name)
        for k in keys:
            if n >= share * total:
                break
            if k not in part and trainable(k):
                part[k] = name
                n += int(members[k].sum())
    return {k: part.get(k, "train") for k in keys}
