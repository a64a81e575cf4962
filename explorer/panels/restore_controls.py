"""The Denoise / Enhance panel's controls: which image, which corruption, the restorers' settings, the buttons.

`settingsChanged` fires once per user change of a setting the results depend on (a new corruption resets its
strength without a second signal); `fileChosen(path)` / `exportChosen(path)` after the file dialogs. The notes under
the image line say what an opened file became for the models and when the image is unlike the training data.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from core.restoration.corruptions import CORRUPTIONS, STRENGTHS
from explorer.panels.restore_cells import DIFF_GAIN
from explorer.widgets.elided_label import ElidedLabel

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.tif *.tiff *.webp);;All files (*)"
NOTE_STYLE = "color: #a05a00;"


def _note_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet(NOTE_STYLE)
    label.hide()
    return label


def _hbox(*items: QWidget | str, stretch: bool = True) -> QHBoxLayout:
    box = QHBoxLayout()
    for item in items:
        box.addWidget(QLabel(item) if isinstance(item, str) else item)
    if stretch:
        box.addStretch(1)
    return box


class RestoreControls(QWidget):
    settingsChanged = Signal()
    fileChosen = Signal(str)
    exportChosen = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.index.setToolTip("index of the image in the dataset's test split")
        self.open_button = QPushButton("Open image…")
        self.open_button.setToolTip("an image file (or drop one onto this tab)")
        self.source_label = ElidedLabel("test image")    # a long file name never widens the window
        self.conversion = _note_label()    # what an image file became for the models (hidden when nothing changed)
        self.domain_note = _note_label()   # the image is unlike the training data (hidden when it is like it)
        self.corruption = QComboBox()
        self.corruption.addItems(CORRUPTIONS)
        self.strength = QDoubleSpinBox()
        self.strength.setDecimals(2)
        self.strength.setSingleStep(0.05)
        self.strength_unit = QLabel()
        self.seed = QSpinBox()
        self.seed.setRange(0, 1_000_000)
        self.refine_steps = QSpinBox()
        self.refine_steps.setRange(1, 2000)
        self.refine_steps.setValue(100)
        self.diffusion_samples = QSpinBox()
        self.diffusion_samples.setRange(1, 64)
        self.diffusion_samples.setValue(4)
        self.diffusion_samples.setToolTip("diffusion restorations averaged (an estimate of the posterior mean)")
        self.run_button = QPushButton("Restore")
        self.cancel_button = QPushButton("Cancel")
        self.diff_toggle = QCheckBox(f"difference |x − clean| × {DIFF_GAIN:g}")
        self.fit_button = QPushButton("Fit")
        self.fit_button.setToolTip("show the whole image in every column again (or double-click an image)")
        self.export_button = QPushButton("Export PNG…")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self._lay_out()
        self.corruption.currentTextChanged.connect(self._on_corruption)
        for box in (self.strength, self.seed, self.refine_steps, self.diffusion_samples):
            box.valueChanged.connect(self.settingsChanged)
        self.open_button.clicked.connect(self._ask_open)
        self.export_button.clicked.connect(self._ask_export)
        self._on_corruption(self.corruption.currentText())

    def _lay_out(self) -> None:
        form = QFormLayout()
        form.addRow("Image", _hbox(self.index, self.open_button, self.source_label))
        form.addRow("Corruption", _hbox(self.corruption, "strength", self.strength, self.strength_unit, "seed",
                                        self.seed))
        form.addRow("Restorers", _hbox("refinement steps", self.refine_steps, "diffusion samples",
                                       self.diffusion_samples))
        buttons = _hbox(self.run_button, self.cancel_button, self.diff_toggle, self.fit_button, self.export_button,
                        stretch=False)
        buttons.addWidget(self.progress, 1)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(form)
        lay.addWidget(self.conversion)     # outside the form: a wrapped label there gets rows of blank space
        lay.addWidget(self.domain_note)
        lay.addLayout(buttons)

    def _on_corruption(self, name: str) -> None:
        default, low, high, unit = STRENGTHS[name]
        with signals_blocked(self.strength):     # one settingsChanged for the whole change, below
            self.strength.setRange(low, high)
            self.strength.setValue(default)
        self.strength.setEnabled(low != high)
        self.strength_unit.setText(unit)
        self.settingsChanged.emit()

    def settings(self) -> dict[str, Any]:
        """The corruption and restorer settings chosen (the batch evaluation uses them too)."""
        return {"corruption": self.corruption.currentText(), "strength": self.strength.value(),
                "seed": self.seed.value(), "refine_steps": self.refine_steps.value(),
                "diffusion_samples": self.diffusion_samples.value()}

    def show_note(self, label: QLabel, text: str) -> None:
        label.setText(text)
        label.setVisible(bool(text))

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", "", IMAGE_FILTER)
        if path:
            self.fileChosen.emit(path)

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the row as PNG", "restore.png", "PNG images (*.png)")
        if path:
            self.exportChosen.emit(path)
