"""Registers ``rs-scene serve`` with the main CLI (found by ``rs_scene.cli.build_parser``)."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    from . import add_arguments, serve

    p: argparse.ArgumentParser = sub.add_parser(
        "serve", help="run the loopback HTTP service for the QGIS plugin"
    )
    add_arguments(p)
    p.set_defaults(func=serve)
