"""Execution paths for a model's forward pass: PyTorch (CPU or GPU) and ONNX Runtime (CPU).

Both give ``logits(x)`` and ``features_and_logits(x)`` (the last feature map, for closed-form Grad-CAM) on a
preprocessed batch. On CPU, ONNX Runtime runs EfficientNet-Lite0 about 1.5-2x faster than eager PyTorch even
with channels_last (it fuses conv + batch norm + clip and has faster depthwise kernels), so ``auto`` picks it
on CPU when it is installed. The ONNX file is exported once per model file and cached.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..card import ModelCard, file_sha256
from ..errors import RSSceneError

RUNTIMES = ("auto", "torch", "onnx")


class Runner(Protocol):
    name: str
    streams: int  # batches the runner may be given at once, from as many threads

    def logits(self, x: torch.Tensor) -> torch.Tensor: ...

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class TorchRunner:
    """Eager PyTorch in inference mode: channels_last memory format (oneDNN and cuDNN both prefer it for
    depthwise and 1x1 convolutions) and bf16 autocast on CUDA."""

    name = "torch"
    streams = 1

    def __init__(self, model: nn.Module, device: torch.device, channels_last: bool = True) -> None:
        self.model, self.device = model, device
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.model.to(memory_format=self.memory_format)
        self.amp = device.type == "cuda"

    def _prep(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory_format)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            return self.model(self._prep(x)).float()

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            feats = self.model.forward_features(self._prep(x))
            return feats.float(), self.model.forward_head(feats).float()


class _WithFeatures(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.model.forward_features(x)
        return self.model.forward_head(feats), feats


def onnx_cache_dir() -> Path:
    env = os.environ.get("RS_SCENE_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rs-scene"
    return base / "onnx"


ONNX_CACHE_KEEP = 8  # exports kept in the cache, the most recently used first (~14 MB each for Lite0)


def prune_onnx_cache(keep: int = ONNX_CACHE_KEEP, cache: Path | None = None) -> list[Path]:
    """Delete all but the ``keep`` most recently used exports (a retrained model gets a new export, and the
    old one would otherwise stay forever); returns the deleted paths."""
    cache = cache or onnx_cache_dir()
    files = sorted(cache.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
    gone = []
    for old in files[keep:]:
        try:
            old.unlink()
            gone.append(old)
        except OSError:  # in use by another process's export, or already gone
            pass
    return gone


def export_onnx(model: nn.Module, card: ModelCard, path: Path, spatial: bool = False) -> Path:
    """Export ``model`` with outputs ``logits`` and (when it has ``forward_features``) ``features``, a dynamic
    batch axis (and, with ``spatial``, dynamic height and width: the context heatmap's blocks), written
    atomically."""
    has_feats = hasattr(model, "forward_features") and hasattr(model, "forward_head")
    net = (_WithFeatures(model) if has_feats else model).eval()
    net.to("cpu", memory_format=torch.contiguous_format)
    x = torch.zeros(2, len(card.bands), card.input_size, card.input_size)
    names = ["logits", "features"] if has_feats else ["logits"]
    hw = {2: "height", 3: "width"} if spatial else {}
    fhw = {2: "cells_y", 3: "cells_x"} if spatial else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(net, (x,), tmp, input_names=["x"], output_names=names, dynamo=False,
                              dynamic_axes={"x": {0: "batch", **hw}, "logits": {0: "batch"},
                                            **({"features": {0: "batch", **fhw}} if has_feats else {})},
                              opset_version=17)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


class OnnxRunner:
    """ONNX Runtime on CPU. ``streams`` batches run at once (``InferenceSession.run`` is thread-safe and
    releases the GIL), each on ``threads // streams`` threads. One single-threaded stream per core is the
    default: a stream has no barrier between its threads, so when the reader or the writer takes a core for a
    while only that stream slows down, where a multi-threaded op would stall whole at its next barrier.
    Threads do not spin while idle, so the reader thread keeps its core."""

    name = "onnx"

    def __init__(self, model: nn.Module, card: ModelCard, model_path: Path, threads: int | None = None,
                 streams: int | None = None, variant: str = "") -> None:
        """``variant`` names a network other than the model file's own (the heatmap's dense copy): it gets
        its own export in the cache."""
        import onnxruntime as ort

        suffix = f"-{variant}" if variant else ""
        path = onnx_cache_dir() / f"{file_sha256(model_path)[:20]}-{card.input_size}{suffix}.onnx"
        if path.exists():
            try:
                os.utime(path)  # most recently used: the cache keeps it
            except OSError:  # a read-only cache still serves its exports
                pass
        else:
            export_onnx(model, card, path, spatial=variant == "context")
            prune_onnx_cache()
        threads = threads or compute_threads()
        self.streams = max(1, min(streams or threads, threads))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(threads // self.streams, 1)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.outputs = [o.name for o in self.session.get_outputs()]
        self.path = path

    def _run(self, x: torch.Tensor, names: list[str]) -> list[Any]:
        return self.session.run(names, {"x": x.detach().cpu().float().contiguous().numpy()})

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run(x, ["logits"])[0])

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if "features" not in self.outputs:
            raise RSSceneError("this ONNX export has no feature output")
        logits, feats = self._run(x, ["logits", "features"])
        return torch.from_numpy(feats), torch.from_numpy(logits)


def onnx_available() -> bool:
    """Whether onnx (for the export) and onnxruntime are installed, without importing them: importing onnx
    took 0.24 s of every cold run, and it is only needed when a model is exported for the first time."""
    return all(importlib.util.find_spec(name) is not None for name in ("onnx", "onnxruntime"))


def make_runner(runtime: str, model: nn.Module, card: ModelCard, model_path: Path, device: torch.device,
                threads: int | None = None, streams: int | None = None, variant: str = "") -> Runner:
    """The runner for ``runtime``: ``auto`` = ONNX Runtime on CPU when installed, else PyTorch."""
    if runtime not in RUNTIMES:
        raise RSSceneError(f"unknown runtime '{runtime}'; choose one of {', '.join(RUNTIMES)}")
    if runtime == "onnx" and device.type != "cpu":
        raise RSSceneError(f"runtime 'onnx' runs on the CPU only, not on {device}; use runtime 'torch' there")
    if runtime == "onnx" and not onnx_available():
        raise RSSceneError("runtime 'onnx' needs onnx and onnxruntime: pip install onnx onnxruntime")
    if runtime == "onnx" or (runtime == "auto" and device.type == "cpu" and onnx_available()):
        try:
            return OnnxRunner(model, card, model_path, threads, streams, variant)
        except Exception as exc:  # export or session errors come in many types
            if runtime == "onnx":
                raise RSSceneError(f"ONNX Runtime could not run {model_path}: {exc}") from exc
            warnings.warn(f"ONNX export of {model_path} failed ({exc}); running in PyTorch", stacklevel=2)
    return TorchRunner(model, device)


_threads_lock = threading.Lock()
_threads_users = 0
_threads_saved = 0


def compute_threads() -> int:
    """Threads the model may use: torch's setting, as it was before any :func:`small_ops_single_threaded`."""
    with _threads_lock:
        return _threads_saved if _threads_users else torch.get_num_threads()


@contextmanager
def small_ops_single_threaded(runner: Runner) -> Iterator[None]:
    """While ONNX Runtime runs the model, torch's own (small) ops run on one thread: OpenMP workers that
    spin-wait for the cores ONNX Runtime is using made a 16 x 10 softmax take 10 ms. Nested and concurrent
    uses share one saved setting, restored when the last ends."""
    global _threads_users, _threads_saved
    if runner.name != "onnx":
        yield
        return
    with _threads_lock:
        if _threads_users == 0:
            _threads_saved = torch.get_num_threads()
            torch.set_num_threads(1)
        _threads_users += 1
    try:
        yield
    finally:
        with _threads_lock:
            _threads_users -= 1
            if _threads_users == 0:
                torch.set_num_threads(_threads_saved)
