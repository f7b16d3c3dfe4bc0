"""Stopping a run: the exception a cancelled run raises and the process-wide stop flag (no torch import, so
the command line can use them before a model loads)."""

from __future__ import annotations

import threading


class Cancelled(Exception):
    """Raised when the caller's cancel event is set; nothing is written."""


# Set by the command line's SIGINT / SIGTERM handlers (rs_scene.cli), and the cancel event of every run that
# was given none: a run stops at its next check even where the KeyboardInterrupt the handler raises was
# swallowed (an exception raised inside a __del__ or a GC callback is printed and dropped).
PROCESS_STOP = threading.Event()
