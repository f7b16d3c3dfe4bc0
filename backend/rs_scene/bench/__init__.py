"""``rs-scene bench``: throughput and memory of the engine, measured side by side, and the ETA of a run.

Each measurement runs in a fresh subprocess (:mod:`.child`) so its peak RSS is its own; :mod:`.suite` runs
the modes interleaved over repeats and reports medians and ratios; :mod:`.estimate` gives the ETA the plugin
shows before a run.
"""

from .estimate import estimate_seconds  # noqa: F401
