"""The message bar shows the latest run only: a new run's message replaces the previous one (whose warning
must not come back after the new success message expires), and a warning with a fix carries its button."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qgis.gui import QgsMessageBarItem
from qgis.PyQt.QtWidgets import QHBoxLayout, QPushButton, QWidget

from ..core.fixes import Fix


class LatestMessage:
    """One message bar item per dialog: ``push`` removes the one it pushed before."""

    def __init__(self, bar_of: Callable[[], Any]) -> None:
        self.bar_of = bar_of
        self.item: QgsMessageBarItem | None = None

    def clear(self) -> None:
        if self.item is not None:
            try:
                self.bar_of().popWidget(self.item)
            except RuntimeError:  # already closed by the user or expired
                pass
            self.item = None

    def push(self, text: str, level: int, duration: int = 0, fixes: list[Fix] | None = None,
             apply: Callable[[Fix], None] | None = None) -> QgsMessageBarItem:
        self.clear()
        widget = None
        if fixes and apply is not None:
            widget = QWidget()
            row = QHBoxLayout(widget)
            row.setContentsMargins(0, 0, 0, 0)
            for fix in fixes:
                button = QPushButton(fix.label)
                button.clicked.connect(lambda _=False, f=fix: apply(f))
                row.addWidget(button)
        item = (QgsMessageBarItem("RS Scene", text, widget, level, duration) if widget is not None
                else QgsMessageBarItem("RS Scene", text, level, duration))
        if widget is not None:
            widget.setParent(item)  # the item owns it: a Python-owned widget would be freed under the bar
        self.bar_of().pushItem(item)
        self.item, self.widget = item, widget
        return item


def bar_texts(bar: Any, level: int | None = None) -> list[str]:
    """The texts of the items in ``bar`` (for tests and diagnostics)."""
    return [i.text() for i in bar.items() if level is None or i.level() == level]

