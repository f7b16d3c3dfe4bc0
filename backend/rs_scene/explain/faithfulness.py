"""How faithful a heatmap is, measured on real images (``make bench-explain``).

- Pasted patch: a square cut from an image of one class pasted at a random place into an image of another,
  the map drawn for the pasted class. Reported: how often the map's peak falls inside the patch (chance: the
  patch's share of the tile) and the mean heat inside minus outside (each map min-max scaled first).
- Deletion / insertion (Petsiuk et al. 2018, RISE): the tile's pixels replaced by a blurred copy of the
  tile, the most-heated first, in equal steps; the score of the class explained falls (deletion; lower area
  under the curve is better) or comes back (insertion; higher is better) faster than for the same pixels in
  a random order if the map ranks them by what the model used. Two random orders: random pixels, and the
  order of another tile's map (random regions of the same shape: scattered pixels blur all of a tile's
  texture at once, which a connected region does not, so they are the harder baseline for deletion). A
  blurred copy, not zeros, as the replacement: zeros make an out-of-distribution edge wherever they are put.
- Position bias: the median Pearson correlation of each tile's map with the mean map of all tiles; a map that
  mostly shows where a tile's centre is correlates near 1 whatever the tile holds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..card import ModelCard
from ..engine.evaluate import preprocess
from .cam import CONTEXT_DETAILS, CamRunner, Target, resample_maps

# value-scaled tiles (N, C, h, w) and a target -> scores (N, classes) and maps (N, h, w) at the tiles' pixels
# (and, for context maps, optional neighbours (N, 8, C, h, w) to lay around each tile)
Explainer = Callable[..., tuple[np.ndarray, np.ndarray]]


def explainer(card: ModelCard, model: torch.nn.Module, method: str = "gradcam", detail: str = "fine",
              norm: str = "tile", batch: int = 16) -> tuple[Explainer, CamRunner]:
    """The heatmap as ``classify`` draws it (same maps, same placement on the tile), for tiles in memory.
    ``detail`` 'context': the tiles are laid out in a georeferenced mosaic and drawn by ``classify``'s
    context pass (see :mod:`.mosaic_context`)."""
    size = (card.input_size, card.input_size)
    runner = CamRunner(model, method, (len(card.bands), *size), detail, norm)
    if runner.detail in CONTEXT_DETAILS:
        from .mosaic_context import context_explainer

        return context_explainer(card, runner, batch), runner

    def run(tiles: np.ndarray, target: Target = None) -> tuple[np.ndarray, np.ndarray]:
        probs, maps = [], []
        for i in range(0, len(tiles), batch):
            x = preprocess(torch.from_numpy(np.ascontiguousarray(tiles[i : i + batch])), card)
            t = target if target is None or isinstance(target, int) else list(target)[i : i + batch]
            logits, m = runner.run(x, t)
            probs.append(logits.detach().float().softmax(1).cpu().numpy())
            maps.append(resample_maps(m, tiles.shape[-2:], runner.alignment(size)))
        return np.concatenate(probs), np.concatenate(maps)

    return run, runner


def predictor(card: ModelCard, logits: Callable[[torch.Tensor], torch.Tensor],
              batch: int = 64) -> Callable[[np.ndarray], np.ndarray]:
    """Scores (N, classes) of value-scaled tiles; ``logits`` runs the model (a runtime's ``logits``)."""

    def run(tiles: np.ndarray) -> np.ndarray:
        out = []
        with torch.inference_mode():
            for i in range(0, len(tiles), batch):
                x = preprocess(torch.from_numpy(np.ascontiguousarray(tiles[i : i + batch])), card)
                out.append(logits(x).float().softmax(1).numpy())
        return np.concatenate(out)

    return run


def _minmax(maps: np.ndarray) -> np.ndarray:
    lo = maps.min((1, 2), keepdims=True)
    return (maps - lo) / np.maximum(maps.max((1, 2), keepdims=True) - lo, 1e-7)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion k / n."""
    if n == 0:
        return (0.0, 1.0)
    p, d = k / n, 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (round(float(c - h), 4), round(float(c + h), 4))


def paste_set(images: Sequence[np.ndarray], labels: Sequence[int], n: int, patch: int,
              seed: int = 0, bases: list[int] | None = None
              ) -> tuple[np.ndarray, list[int], list[tuple[int, int]]]:
    """``n`` pastes: tiles, the pasted class of each and the patch's top-left (y, x). Base and source are
    images of two different classes drawn at random, the patch cut and pasted at random places; ``bases``
    (a list) receives each paste's base image index."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    tiles, targets, boxes = [], [], []
    for _ in range(n):
        b = int(rng.integers(len(images)))
        s = int(rng.choice(np.flatnonzero(labels != labels[b])))
        base, src = images[b].copy(), images[s]
        h, w = base.shape[-2:]
        sy, sx = rng.integers(0, src.shape[-2] - patch + 1), rng.integers(0, src.shape[-1] - patch + 1)
        y, x = int(rng.integers(0, h - patch + 1)), int(rng.integers(0, w - patch + 1))
        base[:, y : y + patch, x : x + patch] = src[:, sy : sy + patch, sx : sx + patch]
        tiles.append(base)
        if bases is not None:
            bases.append(b)
        targets.append(int(labels[s]))
        boxes.append((y, x))
    return np.stack(tiles), targets, boxes


def same_class_neighbours(images: np.ndarray, labels: Sequence[int], bases: list[int],
                          seed: int = 0) -> np.ndarray:
    """For context maps: 8 other images of each paste's base class (N, 8, C, h, w), so the pasted tile
    sits in a field of its own class, as a patch of one land cover inside another does in a scene."""
    rng = np.random.default_rng(seed + 1)
    labels = np.asarray(labels)
    out = []
    for b in bases:
        pool = np.flatnonzero((labels == labels[b]) & (np.arange(len(labels)) != b))
        out.append(images[rng.choice(pool, size=8, replace=len(pool) < 8)])
    return np.stack(out)


def pasted_patch(explain: Explainer, tiles: np.ndarray, targets: list[int], boxes: list[tuple[int, int]],
                 patch: int, neighbours: np.ndarray | None = None) -> dict[str, Any]:
    _, maps = explain(tiles, targets) if neighbours is None else explain(tiles, targets, neighbours)
    h, w = maps.shape[-2:]
    inside, contrast, blank = 0, [], 0
    for m, (y, x), s in zip(maps, boxes, _minmax(maps), strict=True):
        if float(m.max() - m.min()) <= 1e-6 * max(float(np.abs(maps).max()), 1e-12):
            blank += 1  # no evidence for the class anywhere: no peak, counted as a miss
            contrast.append(0.0)
            continue
        i, j = np.unravel_index(int(np.argmax(m)), m.shape)
        inside += int(y <= i < y + patch and x <= j < x + patch)
        box = s[y : y + patch, x : x + patch]
        contrast.append(box.mean() - (s.sum() - box.sum()) / (h * w - patch * patch))
    n = len(boxes)
    shown = n - blank
    return {"pastes": n, "patch_px": patch, "peak_inside": round(inside / n, 4),
            "peak_inside_ci95": wilson(inside, n), "chance": round(patch * patch / (h * w), 4),
            "blank_maps": blank, "peak_inside_shown": round(inside / shown, 4) if shown else None,
            "peak_inside_shown_ci95": wilson(inside, shown),
            "contrast": round(float(np.mean(contrast)), 4),
            "contrast_ci95_half": round(float(1.96 * np.std(contrast) / np.sqrt(n)), 4)}


def _blur(tiles: np.ndarray) -> np.ndarray:
    import cv2

    h = tiles.shape[-1]
    sigma = max(h / 8, 1.0)
    flat = tiles.reshape(-1, *tiles.shape[-2:]).astype(np.float32)
    out = np.stack([cv2.GaussianBlur(p, (0, 0), sigma, borderType=cv2.BORDER_REFLECT) for p in flat])
    return out.reshape(tiles.shape)


def _curves(predict: Callable[[np.ndarray], np.ndarray], tiles: np.ndarray, base: np.ndarray,
            order: np.ndarray, classes: np.ndarray, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """Score of ``classes`` after replacing the first k/steps of ``order`` (deletion) or after putting them
    back into the blurred tile (insertion), k = 0..steps; (N, steps + 1) each."""
    n, hw = order.shape
    dele, ins = np.empty((n, steps + 1)), np.empty((n, steps + 1))
    for k in range(steps + 1):
        first = np.zeros((n, hw), dtype=bool)
        np.put_along_axis(first, order[:, : round(k * hw / steps)], True, axis=1)
        m = first.reshape(n, 1, *tiles.shape[-2:])
        both = np.concatenate([np.where(m, base, tiles), np.where(m, tiles, base)])
        p = predict(both)[np.arange(2 * n), np.tile(classes, 2)]
        dele[:, k], ins[:, k] = p[:n], p[n:]
    return dele, ins


ROAD_PERCENTILES = (10, 20, 30, 40, 50, 60, 70, 80, 90)  # pytorch-grad-cam's ROAD averages, in %


def road_impute(tile: np.ndarray, keep: np.ndarray, rng: np.random.Generator,
                noise: float = 0.01) -> np.ndarray:
    """ROAD's noisy linear imputation (Rong et al. 2022, pytorch-grad-cam's ``NoisyLinearImputer``): every
    removed pixel (``keep`` False) becomes the weighted mean of its 8 neighbours, solved as one sparse
    system over all removed pixels, plus Gaussian noise of ``noise`` x the tile's standard deviation. Unlike
    a blurred copy, scattered removed pixels are filled from their kept neighbours, so the removal's shape
    tells the model nothing and a random order removes little information."""
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer, neighbors_weights
    from scipy.sparse import csc_matrix
    from scipy.sparse.linalg import spsolve

    if keep.all():
        return tile.copy()
    a, b = NoisyLinearImputer.setup_sparse_system(keep.astype(np.float64), tile.astype(np.float64),
                                                 neighbors_weights)
    solved = np.asarray(spsolve(csc_matrix(a), b)).reshape(-1, tile.shape[0]).T
    out = tile.reshape(tile.shape[0], -1).astype(np.float32)
    gone = np.flatnonzero(~keep.reshape(-1))
    out[:, gone] = solved + noise * float(tile.std()) * rng.standard_normal(solved.shape)
    return out.reshape(tile.shape)


def road_deletion(predict: Callable[[np.ndarray], np.ndarray], tiles: np.ndarray, order: np.ndarray,
                  classes: np.ndarray, rng: np.random.Generator,
                  percentiles: Sequence[int] = ROAD_PERCENTILES) -> np.ndarray:
    """Per tile, the mean score of ``classes`` with the first p % of ``order`` removed and imputed by
    :func:`road_impute`, over ``percentiles`` (ROAD's most-relevant-first average; lower is better)."""
    n, hw = order.shape
    scores = np.empty((n, len(percentiles)))
    for k, pct in enumerate(percentiles):
        keep = np.ones((n, hw), dtype=bool)
        np.put_along_axis(keep, order[:, : round(pct * hw / 100)], False, axis=1)
        masks = keep.reshape(n, *tiles.shape[-2:])
        imputed = np.stack([road_impute(t, m, rng) for t, m in zip(tiles, masks, strict=True)])
        scores[:, k] = predict(imputed)[np.arange(n), classes]
    return scores.mean(1)


def deletion_insertion(explain: Explainer, predict: Callable[[np.ndarray], np.ndarray], tiles: np.ndarray,
                       steps: int = 10, randoms: int = 2, seed: int = 0,
                       road: bool = False) -> dict[str, Any]:
    """Areas under the deletion and insertion curves of the maps' order and of random orders (mean over
    ``randoms``), for each tile's predicted class; ``deletion_better`` is the share of tiles whose map-order
    deletion area is below its random-order area. ``road``: also ROAD's deletion (:func:`road_deletion`) of
    the map's order and of random pixels."""
    rng = np.random.default_rng(seed)
    probs, maps = explain(tiles, None)
    classes = probs.argmax(1)
    n = len(tiles)
    flat = maps.reshape(n, -1)
    jitter = rng.random(flat.shape) * 1e-6 * (np.abs(flat).max() + 1e-12)  # ties (flat maps): no fixed order
    base = _blur(tiles)
    auc = {}
    d, i = _curves(predict, tiles, base, np.argsort(-(flat + jitter), axis=1), classes, steps)
    auc["map"] = (np.trapezoid(d, axis=1) / steps, np.trapezoid(i, axis=1) / steps)
    rd, ri = [], []
    for _ in range(randoms):
        order = np.argsort(rng.random(flat.shape), axis=1)
        d, i = _curves(predict, tiles, base, order, classes, steps)
        rd.append(np.trapezoid(d, axis=1) / steps)
        ri.append(np.trapezoid(i, axis=1) / steps)
    r_del, r_ins = np.mean(rd, 0), np.mean(ri, 0)
    # random pixels spread the replacement over the whole tile, a map's order removes connected regions:
    # another tile's map gives random regions of the same shape (the fairer baseline)
    sd, si = [], []
    for r in range(1, min(randoms, n - 1) + 1):
        other = np.roll(flat + jitter, r, axis=0)
        d, i = _curves(predict, tiles, base, np.argsort(-other, axis=1), classes, steps)
        sd.append(np.trapezoid(d, axis=1) / steps)
        si.append(np.trapezoid(i, axis=1) / steps)
    s_del = np.mean(sd, 0) if sd else r_del
    extra: dict[str, Any] = {}
    if road:  # ROAD: the same orders, the removed pixels imputed from the kept ones (no blur to key on)
        rng_r = np.random.default_rng(seed + 7)
        m_road = road_deletion(predict, tiles, np.argsort(-(flat + jitter), axis=1), classes, rng_r)
        r_road = np.mean([road_deletion(predict, tiles, np.argsort(rng.random(flat.shape), axis=1), classes,
                                        rng_r) for _ in range(randoms)], 0)
        # and another tile's map: regions of the same shape elsewhere (the fairer baseline, as above)
        other = np.argsort(-np.roll(flat + jitter, 1, axis=0), axis=1)
        o_road = road_deletion(predict, tiles, other, classes, rng_r) if n > 1 else r_road
        extra = {"road_deletion_auc": round(float(m_road.mean()), 4),
                 "road_deletion_auc_random": round(float(r_road.mean()), 4),
                 "road_deletion_auc_other_map": round(float(o_road.mean()), 4),
                 "road_deletion_better": round(float((m_road < r_road).mean()), 4),
                 "road_deletion_better_than_other_map": round(float((m_road < o_road).mean()), 4)}
    return extra | {"tiles": n, "steps": steps, "deletion_auc": round(float(auc["map"][0].mean()), 4),
            "deletion_auc_random": round(float(r_del.mean()), 4),
            "deletion_auc_other_map": round(float(s_del.mean()), 4),
            "insertion_auc_other_map": round(float(np.mean(si, 0).mean() if si else r_ins.mean()), 4),
            "deletion_better_than_other_map": round(float((auc["map"][0] < s_del).mean()), 4),
            "insertion_auc": round(float(auc["map"][1].mean()), 4),
            "insertion_auc_random": round(float(r_ins.mean()), 4),
            "deletion_better": round(float((auc["map"][0] < r_del).mean()), 4)}


def position_bias(maps: np.ndarray) -> dict[str, Any]:
    """Median correlation of each map with the mean map, and the largest share of maps peaking on one
    pixel. Constant maps (no heat anywhere) have no correlation and are left out of the median."""
    mean = maps.mean(0).ravel()
    mean = mean - mean.mean()
    corr, peaks = [], {}
    for m in maps:
        v = m.ravel() - m.mean()
        den = np.linalg.norm(v) * np.linalg.norm(mean)
        if den > 0:
            corr.append(float(v @ mean / den))
        p = int(np.argmax(m))
        peaks[p] = peaks.get(p, 0) + 1
    return {"tiles": len(maps), "median_corr": round(float(np.median(corr)), 4) if corr else None,
            "same_peak_share": round(max(peaks.values()) / len(maps), 4)}


def seam_ratio(heat: np.ndarray, valid: np.ndarray, tile: int) -> float:
    """Mean absolute step between neighbouring pixels across tile borders over that within tiles (both
    axes): 1 where the mosaic is as smooth across borders as inside tiles."""
    across, within = [], []
    for h, v in ((heat, valid), (heat.T, valid.T)):
        step = np.abs(np.diff(h, axis=1))
        ok = v[:, 1:] & v[:, :-1]
        border = np.zeros(step.shape[1], dtype=bool)
        border[tile - 1 :: tile] = True
        across.append(step[:, border][ok[:, border]])
        within.append(step[:, ~border][ok[:, ~border]])
    a, w = np.concatenate(across), np.concatenate(within)
    return round(float(a.mean() / max(w.mean(), 1e-12)), 3)
