"""The Train panel's settings view: a preset, the model kind, the Data / Model / Training forms and the form's problem.

The forms are built from core.config's dataclasses (ConfigForm). `changed` fires after any edit (a field, the model
kind, a preset), and the panel then asks `problem()` and shows it with `show_problem()`: whether the form may start a
run depends on the run state, which is the panel's. While a run folder is followed, the greyed form shows that run's
own settings (`show_config`), and `settings()` / `restore_settings()` keep the user's form to put it back after.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from core.config import PRESETS, Config, DataConfig, DiffusionConfig, TrainConfig, VAEConfig
from core.errors import UserError
from explorer.widgets.config_form import ConfigForm

KNOWN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10")   # + folder:PATH (core.data is not imported here)


def dataset_problem(name: str) -> str:
    """Why `name` cannot be trained on ("" when it can): an unknown dataset, or a folder that does not exist."""
    if name.startswith("folder:"):
        folder = name[len("folder:"):]
        if not Path(folder).expanduser().is_dir():
            return f"the image folder {folder!r} does not exist: pick one with Image folder"
    elif name not in KNOWN_DATASETS:
        return f"unknown dataset {name!r}; choose {', '.join(KNOWN_DATASETS)} or folder:PATH"
    return ""


def _scrolled(widget: QWidget) -> QScrollArea:
    scroll = QScrollArea()
    scroll.setWidgetResizable(True)
    scroll.setWidget(widget)
    scroll.setFrameShape(QScrollArea.Shape.NoFrame)
    return scroll


class TrainSettingsForm(QWidget):
    changed = Signal()    # a field, the model kind or the preset changed: ask problem() again

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        top = QFormLayout()
        self.preset_combo = QComboBox()
        self.preset_combo.addItems(list(PRESETS))
        self.preset_combo.setToolTip("Fill the form with a named preset (core.config.PRESETS)")
        self.preset_combo.activated.connect(lambda _i: self.apply_preset(self.preset_combo.currentText()))
        top.addRow("Preset", self.preset_combo)
        self.kind_combo = QComboBox()
        self.kind_combo.addItems(["vae", "diffusion"])
        self.kind_combo.setToolTip("What to train: a conditional VAE or a class-conditional diffusion model")
        top.addRow("Model", self.kind_combo)
        lay.addLayout(top)
        lay.addWidget(self._build_forms(), 1)
        self.error_label = QLabel("")
        self.error_label.setWordWrap(True)
        self.error_label.setStyleSheet("color: rgb(220, 60, 60);")
        lay.addWidget(self.error_label)

    def _build_forms(self) -> QTabWidget:
        self.data_form = ConfigForm(DataConfig, choices={"name": KNOWN_DATASETS})
        folder_button = QPushButton("Image folder...")
        folder_button.setToolTip("Train on a folder with one subfolder of images per class (folder:PATH)")
        folder_button.clicked.connect(self._pick_folder)
        self.data_form.layout_.insertRow(1, "", folder_button)
        self.vae_form = ConfigForm(VAEConfig)
        self.diffusion_form = ConfigForm(DiffusionConfig)
        self.model_stack = QStackedWidget()
        self.model_stack.addWidget(self.vae_form)
        self.model_stack.addWidget(self.diffusion_form)
        self.kind_combo.currentIndexChanged.connect(self.model_stack.setCurrentIndex)
        self.kind_combo.currentIndexChanged.connect(lambda _i: self.changed.emit())
        self.train_form = ConfigForm(TrainConfig)
        self.forms = QTabWidget()
        for title, w in (("Data", self.data_form), ("Model", self.model_stack), ("Training", self.train_form)):
            self.forms.addTab(_scrolled(w), title)
        for form in self.all_forms():
            form.changed.connect(self.changed)
        return self.forms

    def all_forms(self) -> tuple[ConfigForm, ...]:
        return (self.data_form, self.vae_form, self.diffusion_form, self.train_form)

    def model_form(self) -> ConfigForm:
        return self.diffusion_form if self.kind_combo.currentText() == "diffusion" else self.vae_form

    # ---- values -----------------------------------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        self.preset_combo.setCurrentText(name)
        self.set_config(PRESETS[name])

    def set_config(self, cfg: Config) -> None:
        self.data_form.set_values(cfg.data)
        (self.diffusion_form if cfg.model.kind == "diffusion" else self.vae_form).set_values(cfg.model)
        self.kind_combo.setCurrentText(cfg.model.kind)
        self.train_form.set_values(cfg.train)
        self.changed.emit()

    def config(self) -> Config:
        """The form's configuration; UserError naming the first invalid value."""
        return Config(data=self.data_form.value(), model=self.model_form().value(), train=self.train_form.value())

    def problem(self) -> str:
        """What keeps the form from starting a run ("" when nothing); a bad dataset name is marked on its field."""
        for form in (self.data_form, self.model_form(), self.train_form):
            if form.error:
                return form.error
        try:
            name = self.config().data.name
        except UserError as e:
            return str(e)
        problem = dataset_problem(name)
        if problem:
            self.data_form.mark("name", problem)
        return problem

    def show_problem(self, problem: str, *, visible: bool = True) -> None:
        self.error_label.setText(problem)
        self.error_label.setVisible(bool(problem) and visible)

    def set_editable(self, editable: bool) -> None:
        for w in (self.forms, self.preset_combo, self.kind_combo):
            w.setEnabled(editable)

    # ---- a followed run's settings, and the user's form kept meanwhile ---------------------------------------------
    def show_config(self, config: Config | Any) -> str:
        """Fill the form with a run's settings (a Config, or the dict a RunStarted carries), under no preset.
        Returns why they cannot be shown ("" when shown)."""
        try:
            cfg = config if isinstance(config, Config) else Config.from_dict(dict(config))
        except (UserError, TypeError, ValueError) as e:
            return str(e)
        self.set_config(cfg)
        self.preset_combo.setCurrentIndex(-1)   # the run's own settings, not a preset's
        return ""

    def settings(self) -> dict[str, Any]:
        """What the form holds, as typed (even if not valid yet)."""
        return {"preset": self.preset_combo.currentIndex(), "kind": self.kind_combo.currentText(),
                "values": [form.raw_values() for form in self.all_forms()]}

    def restore_settings(self, saved: dict[str, Any]) -> None:
        self.kind_combo.setCurrentText(saved["kind"])
        for form, values in zip(self.all_forms(), saved["values"], strict=True):
            for name, value in values.items():
                form.set_field(name, value)
        self.preset_combo.setCurrentIndex(saved["preset"])
        self.changed.emit()

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Image folder (one subfolder per class)")
        if path:
            self.data_form.set_field("name", f"folder:{path}")
