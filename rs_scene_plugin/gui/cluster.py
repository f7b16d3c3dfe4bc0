"""Where the service runs classify jobs, for the Classify dialog: "on cluster ADDRESS" when it runs them on
a Ray cluster (``rs-scene serve --ray``, set by the "Ray cluster" backend setting), nothing when it runs them
itself on this machine. Read from the service's ``/health``, so it says what the running service does."""

from __future__ import annotations

from typing import Any

from qgis.PyQt.QtWidgets import QLabel


def cluster_of(health: dict[str, Any] | None) -> dict[str, Any] | None:
    return (health or {}).get("ray") or None


def cluster_text(health: dict[str, Any] | None) -> str:
    """"Classify jobs run on cluster 10.0.0.5:6379 (3 nodes, 48 CPUs, 8 GPUs)", or "" without a cluster."""
    ray = cluster_of(health)
    if ray is None:
        return ""
    if ray.get("error"):
        return f"Classify jobs run on cluster {ray['address']}, which does not answer now: {ray['error']}"
    nodes = ray.get("nodes", 0)
    return (f"Classify jobs run on cluster {ray['address']} ({nodes} node{'s' if nodes != 1 else ''}, "
            f"{ray.get('cpus', 0):g} CPUs, {ray.get('gpus', 0):g} GPUs)")


class ClusterLabel(QLabel):
    """Hidden unless the service runs classify jobs on a cluster."""

    def __init__(self, parent: Any = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.address: str | None = None
        self.setVisible(False)

    def show_for(self, health: dict[str, Any] | None) -> None:
        ray = cluster_of(health)
        self.address = ray["address"] if ray else None
        text = cluster_text(health)
        self.setText(text)
        self.setVisible(bool(text))

    @property
    def suffix(self) -> str:
        """" on cluster ADDRESS" for the status line of a run, or ""."""
        return f" on cluster {self.address}" if self.address else ""
