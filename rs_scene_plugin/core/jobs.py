"""Run one service job to its end: submit, poll progress, pass cancel on. Used by QgsTasks and Processing."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .backend import BackendManager
from .client import BackendError, BackendUnreachable, JobCancelled

Progress = Callable[[dict[str, Any]], None]
UNANSWERED_POLLS = 3  # polls in a row a live service may miss before the job counts as lost


def percent(job: dict[str, Any]) -> float:
    return 100.0 * job["done"] / job["total"] if job.get("total") else 0.0


def run_job(manager: BackendManager, kind: str, body: dict[str, Any], on_update: Progress,
            is_canceled: Callable[[], bool], poll_s: float = 0.25) -> dict[str, Any]:
    """The job's result dict. Raises BackendError (failed, service gone) or JobCancelled."""
    client = manager.client()
    job = client.submit(kind, body)
    cancel_sent, misses = False, 0
    while True:
        if is_canceled() and not cancel_sent:
            client.cancel(job["id"])
            cancel_sent = True
        try:
            job = client.job(job["id"])
            misses = 0
        except BackendUnreachable as exc:
            misses += 1
            if misses < UNANSWERED_POLLS and manager.is_running():  # alive but slow (a loaded machine)
                time.sleep(1.0)
                continue
            lost = "no model was written" if kind == "train" else "nothing was added"
            raise BackendError(f"The RS Scene service stopped during the job ({manager.exit_cause()}); {lost}. "
                               "It is restarted on the next run.\n"
                               f"Last lines of its log ({manager.log_file}):\n{manager.log_tail(6)}") from exc
        on_update(job)
        state = job["state"]
        if state == "done":
            return job["result"]
        if state == "failed":
            raise BackendError(job["error"] or "the job failed")
        if state == "cancelled":
            raise JobCancelled("cancelled")
        time.sleep(poll_s)


def describe(job: dict[str, Any]) -> str:
    text = f"{job.get('stage', '')} {job.get('done', 0)}/{job.get('total', 0)}"
    eta: float | None = job.get("eta_s")
    return text + (f", about {eta:.0f} s left" if eta is not None else "")
