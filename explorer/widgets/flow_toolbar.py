"""A toolbar that wraps onto more rows when the window is narrow (superqt's QFlowLayout), built from groups: the
widgets of one group (a caption and its box) stay side by side and wrap together."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from PySide6.QtWidgets import QHBoxLayout, QWidget
from superqt import QFlowLayout


def flow_toolbar(groups: Iterable[Sequence[QWidget]]) -> QWidget:
    bar = QWidget()
    flow = QFlowLayout(bar)
    flow.setContentsMargins(0, 0, 0, 0)
    for group in groups:
        holder = QWidget()
        row = QHBoxLayout(holder)
        row.setContentsMargins(0, 0, 0, 0)
        row.setSpacing(4)
        for widget in group:
            row.addWidget(widget)
        flow.addWidget(holder)
    return bar
