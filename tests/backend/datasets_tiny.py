"""Tiny real datasets cut from ../shared/data as symlinked subsets (nothing copied or downloaded), for the
method, polygon and train-CLI tests. Imported by those test modules as a pytest plugin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import SHARED


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors: one thread avoids paying for thread hand-offs, which dominate on a shared 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def link_subset(src: Path, dst: Path, classes: list[str], per_class: int) -> Path:
    for c in classes:
        (dst / c).mkdir(parents=True)
        for f in sorted((src / c).iterdir())[:per_class]:
            (dst / c / f.name).symlink_to(f)
    return dst


@pytest.fixture(scope="session")
def data_root() -> Path:
    return SHARED


@pytest.fixture(scope="session")
def ucm_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """UC Merced: 3 classes x 4 images."""
    return link_subset(
        SHARED / "ucmerced",
        tmp_path_factory.mktemp("ucm"),
        ["agricultural", "beach", "forest"],
        4,
    )


@pytest.fixture(scope="session")
def eurosat_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """EuroSAT-MS: 3 classes x 4 images (no split.csv)."""
    return link_subset(
        SHARED / "eurosat_ms",
        tmp_path_factory.mktemp("eus"),
        ["Forest", "River", "SeaLake"],
        4,
    )
