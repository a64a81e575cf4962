"""A form built from a config dataclass's fields and their metadata (help, low, high, choices).

bool → QCheckBox; a field with choices → QComboBox; int → QSpinBox bounded by low/high; float and str → QLineEdit (a
float typed as text can be out of range or not a number, and is then marked red instead of silently clamped). The form
validates live by constructing the dataclass (`core.config.from_mapping`), the same check the CLI and JSON loading
use; `problem()` is the first problem ("" when valid) and `changed` fires on every edit.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QCheckBox, QComboBox, QFormLayout, QLineEdit, QSpinBox, QWidget
from superqt.utils import signals_blocked

from core.config import from_mapping
from core.errors import UserError

INVALID_STYLE = "background-color: rgba(220, 50, 50, 70); border: 1px solid rgb(200, 40, 40);"
_INT_MAX = 2**31 - 1


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class ConfigForm(QWidget):
    changed = Signal()                 # any field edited

    def __init__(self, cls: type, parent: QWidget | None = None, *, skip: tuple[str, ...] = (),
                 choices: dict[str, tuple[str, ...]] | None = None) -> None:
        """`choices` adds suggestions to a str field (an editable combo box), e.g. known dataset names."""
        super().__init__(parent)
        self.cls = cls
        self.editors: dict[str, QWidget] = {}
        self._fields = {f.name: f for f in dataclasses.fields(cls) if f.name not in skip}
        self.layout_ = QFormLayout(self)
        self.layout_.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        default = cls()
        self._error = ""
        for name, f in self._fields.items():
            editor = self._make_editor(f, getattr(default, name), (choices or {}).get(name))
            editor.setToolTip(f.metadata.get("help", ""))
            editor.setObjectName(name)
            self.editors[name] = editor
            self.layout_.addRow(_label(name), editor)
        self.set_values(default)

    def _make_editor(self, f: dataclasses.Field, default: Any, suggestions: tuple[str, ...] | None) -> QWidget:
        meta = f.metadata
        if isinstance(default, bool):
            w: QWidget = QCheckBox()
            w.toggled.connect(self._on_changed)
        elif meta.get("choices") or suggestions:
            w = QComboBox()
            w.addItems(list(meta.get("choices") or suggestions))
            if suggestions and not meta.get("choices"):
                w.setEditable(True)
                w.editTextChanged.connect(self._on_changed)
            w.currentTextChanged.connect(self._on_changed)
        elif isinstance(default, int):
            w = QSpinBox()
            low, high = meta.get("low"), meta.get("high")
            w.setRange(int(low) if low is not None else 0, int(high) if high is not None else _INT_MAX)
            w.setAccelerated(True)
            w.valueChanged.connect(self._on_changed)
        else:
            w = QLineEdit()
            if isinstance(default, tuple):
                w.setPlaceholderText("comma-separated")
            w.textChanged.connect(self._on_changed)
        return w

    # ---- values -----------------------------------------------------------------------------------------------------
    def raw_values(self) -> dict[str, Any]:
        """What the editors hold, as the JSON-ish values `from_mapping` converts (strings for text fields)."""
        out: dict[str, Any] = {}
        for name, w in self.editors.items():
            if isinstance(w, QCheckBox):
                out[name] = w.isChecked()
            elif isinstance(w, QComboBox):
                out[name] = w.currentText()
            elif isinstance(w, QSpinBox):
                out[name] = w.value()
            else:
                out[name] = w.text().strip()
        return out

    def set_values(self, obj: Any) -> None:
        for name, w in self.editors.items():
            value = getattr(obj, name)
            with signals_blocked(w):
                if isinstance(w, QCheckBox):
                    w.setChecked(bool(value))
                elif isinstance(w, QComboBox):
                    if w.findText(str(value)) < 0 and w.isEditable():
                        w.setEditText(str(value))
                    else:
                        w.setCurrentText(str(value))
                elif isinstance(w, QSpinBox):
                    w.setValue(int(value))
                else:
                    w.setText(_fmt(value))
        self._on_changed()

    def value(self) -> Any:
        """The dataclass the form describes; UserError when a field is invalid."""
        return from_mapping(self.cls, self.raw_values())

    def set_field(self, name: str, value: Any) -> None:
        w = self.editors[name]
        if isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            (w.setEditText if w.isEditable() else w.setCurrentText)(str(value))
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        else:
            w.setText(_fmt(value))

    # ---- validation -------------------------------------------------------------------------------------------------
    @property
    def error(self) -> str:
        return self._error

    def invalid_fields(self) -> list[str]:
        return [n for n, w in self.editors.items() if w.property("invalid")]

    def _on_changed(self, *_: Any) -> None:
        raw = self.raw_values()
        first = ""
        for name, w in self.editors.items():
            try:   # each field alone, so the mark lands on the field that is wrong
                from_mapping(self.cls, {name: raw[name]})
                problem = ""
            except UserError as e:
                problem = str(e)
            w.setProperty("invalid", bool(problem))
            w.setStyleSheet(INVALID_STYLE if problem else "")
            w.setToolTip(self._fields[name].metadata.get("help", "") + (f"\n\n{problem}" if problem else ""))
            first = first or problem
        if not first:
            try:
                self.value()
            except UserError as e:
                first = str(e)
        self._error = first
        self.changed.emit()

    def mark(self, name: str, problem: str) -> None:
        """Mark a field invalid for a reason the dataclass cannot see (e.g. a folder that does not exist)."""
        w = self.editors[name]
        w.setProperty("invalid", True)
        w.setStyleSheet(INVALID_STYLE)
        w.setToolTip(self._fields[name].metadata.get("help", "") + f"\n\n{problem}")
