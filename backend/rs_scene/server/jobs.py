"""Jobs and the one worker thread that runs them one at a time (one device, one job)."""

from __future__ import annotations

import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)

#: A job body: ``run(job) -> result dict``. It reports through ``job.report`` and polls ``job.cancel``.
Runner = Callable[["Job"], dict[str, Any]]


class JobCancelled(Exception):
    """Raised by a runner (or the engine's own ``Cancelled``) when the job's cancel event is set."""


@dataclass
class Job:
    kind: str
    runner: Runner
    request: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    state: str = QUEUED
    stage: str = "queued"
    done: int = 0
    total: int = 0
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    result: dict[str, Any] = field(default_factory=dict)
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    _stage_t0: float = 0.0
    _stage_done0: int = 0

    def report(self, done: int, total: int, stage: str) -> None:
        """Progress from the engine; the ETA is measured per stage (epochs and tiles differ in cost)."""
        if stage != self.stage or done < self.done:
            self._stage_t0, self._stage_done0 = time.perf_counter(), done
        self.stage, self.done, self.total = stage, int(done), int(total)

    def release(self) -> None:
        """Drop what only running needed (pixels sent by value, the runner holding the request)."""
        self.request = {k: v for k, v in self.request.items() if k != "pixels"}
        self.runner = _released

    def eta_s(self) -> float | None:
        if self.state != RUNNING or not self.total or self.done <= self._stage_done0:
            return None
        rate = (time.perf_counter() - self._stage_t0) / (self.done - self._stage_done0)
        return round(rate * (self.total - self.done), 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "state": self.state,
            "stage": self.stage,
            "done": self.done,
            "total": self.total,
            "eta_s": self.eta_s(),
            "metrics": self.metrics,
            "history": self.history,
            "error": self.error,
            "result": self.result,
            "created": self.created,
            "started": self.started,
            "finished": self.finished,
        }


class QueueFull(Exception):
    """Too many jobs wait already (answered with 429): each may hold its pixels in memory."""


MAX_WAITING = 16


class JobQueue:
    """Jobs in arrival order; one worker thread runs them so they never compete for the device. Finished
    jobs are kept for their results up to ``keep`` of them (the oldest go first); at most ``max_waiting`` jobs
    wait at once."""

    def __init__(self, cancelled_types: tuple[type[BaseException], ...] = (), keep: int = 100,
                 max_waiting: int = MAX_WAITING) -> None:
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._cancelled_types = (JobCancelled, *cancelled_types)
        self.keep, self.max_waiting = keep, max_waiting
        self._worker = threading.Thread(target=self._work, name="rs-scene-worker", daemon=True)
        self._worker.start()

    def submit(self, kind: str, runner: Runner, request: dict[str, Any]) -> Job:
        job = Job(kind, runner, request)
        with self._lock:
            waiting = sum(j.state == QUEUED for j in self._jobs.values())
            if waiting >= self.max_waiting:
                raise QueueFull(f"{waiting} jobs are waiting already; submit again when one has finished")
            self._jobs[job.id] = job
            self._prune()
        self._queue.put(job)
        return job

    def _prune(self) -> None:
        """Forget the oldest finished jobs beyond ``keep`` (called with the lock held)."""
        done = sorted((j for j in self._jobs.values() if j.state in FINISHED), key=lambda j: j.finished or 0)
        for job in done[: max(len(done) - self.keep, 0)]:
            del self._jobs[job.id]

    def wait_idle(self, timeout: float) -> bool:
        """After :meth:`stop`: wait until the worker has ended (the running job honoured its cancel)."""
        self._worker.join(timeout)
        return not self._worker.is_alive()

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job: Job) -> None:
        job.cancel.set()
        with self._lock:
            if job.state == QUEUED:
                job.state, job.stage, job.finished = CANCELLED, "cancelled", time.time()
                job.release()

    def counts(self) -> dict[str, int]:
        jobs = self.all()
        return {s: sum(j.state == s for j in jobs) for s in (QUEUED, RUNNING)}

    def stop(self) -> None:
        for job in self.all():
            self.cancel(job)
        self._queue.put(None)

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != QUEUED:
                    continue
                job.state, job.started, job.stage = RUNNING, time.time(), "starting"
            self._run(job)

    def _run(self, job: Job) -> None:
        try:
            # a run that finished despite a late cancel is complete, not partial: keep it
            job.result, state, error = job.runner(job), DONE, None
        except self._cancelled_types:
            state, error = CANCELLED, None
        except Exception as exc:  # a failing job must never take the service down
            state, error = FAILED, _message(exc)
            if not _is_user_error(exc):
                traceback.print_exc()
        with self._lock:
            job.state, job.error, job.finished = state, error, time.time()
            job.stage = state
            job.release()
            self._prune()


def _released(job: Job) -> dict[str, Any]:
    raise RuntimeError(f"job {job.id} has ended; it cannot run again")


def _is_user_error(exc: BaseException) -> bool:
    return type(exc).__name__ in ("RSSceneError", "RequestError")


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if _is_user_error(exc) else f"{type(exc).__name__}: {text}"
