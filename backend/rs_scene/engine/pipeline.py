"""Threads that overlap the stages of a run: a generator running ahead in the background (reading), and a
map that runs several items at once but hands results back in order (inference streams)."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def prefetch(gen_fn: Callable[[], Iterator[T]], depth: int = 3) -> Iterator[T]:
    """Run a generator in a background thread, ``depth`` items ahead; re-raise its errors here."""
    q: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()

    def work() -> None:
        try:
            for item in gen_fn():
                q.put(item)
        except BaseException as exc:  # handed to the consumer
            q.put(exc)
        q.put(done)

    th = threading.Thread(target=work, daemon=True)
    th.start()
    while True:
        item = q.get()
        if item is done:
            break
        if isinstance(item, BaseException):
            raise item
        yield item
    th.join()


def ordered_map(fn: Callable[[T], R], items: Iterable[T], streams: int = 1, ahead: int = 1,
                name: str = "rs-scene-infer") -> Iterator[R]:
    """``map(fn, items)`` with up to ``streams`` calls running at once in worker threads (named ``name``),
    results in input order. ``ahead`` items more than ``streams`` are kept queued, so a worker never waits
    for the consumer; while the consumer handles a result (writes, post-processing) the next calls are
    already running. ``streams`` 1 still runs ``fn`` in one worker thread, overlapping it with the consumer.
    Leaving early (an error, a cancel) drops the queued calls and waits for the running ones."""
    pending: deque[Future[R]] = deque()
    with ThreadPoolExecutor(max(streams, 1), thread_name_prefix=name) as pool:
        try:
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) > streams + ahead - 1:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
