"""The Denoise / Enhance panel's batch evaluation: every restorer over N test images
(`core.restoration.benchmark.batch_evaluate`,
on a worker thread), PSNR / SSIM means and spreads in a table that can be saved as CSV or JSON.

The line above the table says what the table was computed with; when a setting, a model or the dataset changes, the
table is greyed and that line says it is out of date until the evaluation runs again."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QBrush, QColor
from PySide6.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.errors import UserError
from core.restoration.corruptions import CORRUPTIONS
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.dialogs import show_error

TABLE_FIELDS = ("corruption", "strength", "restorer", "n", "psnr_mean", "psnr_std", "ssim_mean", "ssim_std",
                "seconds_per_image")
HEADERS = ("corruption", "strength", "restorer", "n", "PSNR", "± PSNR", "SSIM", "± SSIM", "s / image")
INPUT_NAMES = {"corruption": "corruption", "strength": "strength", "seed": "seed", "refine_steps": "refinement steps",
               "diffusion_samples": "diffusion samples", "n_images": "images", "every": "all corruptions",
               "vae": "VAE", "diffusion": "diffusion model", "dataset": "dataset"}
MODEL_INPUTS = ("vae", "diffusion", "dataset")    # compared by identity: a new snapshot is a new model
STALE_GREY = QColor(150, 150, 150)


class BatchEvaluation(QGroupBox):
    statusChanged = Signal(str)
    busyChanged = Signal()

    def __init__(self, state: AppState, settings: Callable[[], dict[str, Any]], parent: QWidget | None = None) -> None:
        """`settings()` gives the panel's current corruption, strength, seed, refine_steps and diffusion_samples."""
        super().__init__("Batch evaluation (test split)", parent)
        self.state = state
        self._settings = settings
        self.tasks = PanelTasks(self)      # "batch": the evaluation
        self.tasks.busyChanged.connect(self.busyChanged)
        self.rows: list[dict[str, Any]] = []
        self._run_inputs: dict[str, Any] | None = None     # what the running evaluation computes
        self._table_inputs: dict[str, Any] | None = None   # what the table shows
        self.stale = False
        self._failed = False
        self.header = QLabel("")
        self.header.setWordWrap(True)
        self.n_images = QSpinBox()
        self.n_images.setRange(1, 10_000)
        self.n_images.setValue(50)
        self.all_corruptions = QCheckBox("all corruptions")
        self.all_corruptions.setToolTip("every corruption at its default strength (the table's rows)")
        self.run_button = QPushButton("Run batch evaluation")
        self.cancel_button = QPushButton("Cancel")
        self.save_button = QPushButton("Save table…")
        self.progress = QProgressBar()
        self.table = QTableWidget(0, len(TABLE_FIELDS))
        self.table.setHorizontalHeaderLabels(list(HEADERS))
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        lay = QVBoxLayout(self)
        row = QHBoxLayout()
        row.addWidget(QLabel("images"))
        for w in (self.n_images, self.all_corruptions, self.run_button, self.cancel_button, self.save_button):
            row.addWidget(w)
        row.addWidget(self.progress, 1)
        lay.addLayout(row)
        lay.addWidget(self.header)
        lay.addWidget(self.table, 1)
        self.n_images.valueChanged.connect(self.inputs_changed)
        self.all_corruptions.toggled.connect(self.inputs_changed)
        for signal in (state.vaeChanged, state.diffusionChanged, state.datasetChanged):
            signal.connect(self.inputs_changed)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button.clicked.connect(self._ask_save)

    def busy(self) -> bool:
        return self.tasks.busy("batch")

    # ---- staleness --------------------------------------------------------------------------------------------------
    def inputs(self) -> dict[str, Any]:
        """Everything the table depends on (with "all corruptions", the chosen corruption and strength do not)."""
        s = dict(self._settings())
        every = self.all_corruptions.isChecked()
        if every:
            s.pop("corruption", None)
            s.pop("strength", None)
        return {**s, "n_images": self.n_images.value(), "every": every, "vae": self.state.vae,
                "diffusion": self.state.diffusion, "dataset": self.state.dataset}

    def changed_inputs(self) -> list[str]:
        """The inputs that differ from those the table was computed with (empty: the table is current)."""
        computed = self._table_inputs
        if computed is None:
            return []
        now = self.inputs()
        return [k for k in now.keys() | computed.keys()
                if (now.get(k) is not computed.get(k) if k in MODEL_INPUTS else now.get(k) != computed.get(k))]

    @staticmethod
    def describe(inputs: dict[str, Any]) -> str:
        what = ("every corruption at its default strength" if inputs["every"]
                else f"{inputs['corruption']} (strength {inputs['strength']:g})")
        return (f"{what}, {inputs['n_images']} test images, seed {inputs['seed']}, {inputs['refine_steps']} "
                f"refinement steps, {inputs['diffusion_samples']} diffusion samples")

    @Slot()
    def inputs_changed(self, *_: Any) -> None:
        """A setting, a model or the dataset changed: grey the table if it was computed with other inputs."""
        if self._table_inputs is None:
            return
        changed = sorted(self.changed_inputs(), key=list(INPUT_NAMES).index)
        self.stale = bool(changed)
        for r in range(self.table.rowCount()):
            for c in range(self.table.columnCount()):
                item = self.table.item(r, c)
                if item is not None:
                    item.setForeground(QBrush(STALE_GREY) if self.stale else QBrush())
        what = self.describe(self._table_inputs)
        if changed:
            names = ", ".join(INPUT_NAMES[k] for k in changed)
            self.header.setText(f"<b>Out of date</b> ({names} changed): the table was computed for {what}. "
                                "Run the batch evaluation again to recompute.")
            self.header.setStyleSheet("color: #a05a00;")
        else:
            self.header.setText(f"Computed for {what}.")
            self.header.setStyleSheet("")

    def update_buttons(self, other_busy: bool) -> None:
        """Enable what applies; `other_busy`: the panel's single-image restoration is running."""
        busy = self.busy()
        self.run_button.setEnabled(not busy and not other_busy and self.state.dataset is not None)
        self.cancel_button.setEnabled(busy)

    def run(self) -> None:
        ds = self.state.dataset
        if ds is None:
            show_error(self, "No dataset loaded: the batch evaluation uses its test split (File menu → dataset).")
            return
        if self.busy():
            return
        from core.restoration.benchmark import batch_evaluate

        vae, diffusion = self.state.vae, self.state.diffusion
        shape = (ds.meta.channels, ds.meta.image_size)
        if vae is not None and (vae.meta.channels, vae.meta.image_size) != shape:
            vae = None
        if diffusion is not None and (diffusion.meta.channels, diffusion.meta.image_size) != shape:
            diffusion = None
        s = self._settings()
        every = self.all_corruptions.isChecked()
        self._run_inputs = self.inputs()
        self.statusChanged.emit("batch evaluation running…")
        self._failed = False
        # the returned list of rows is one result, not events
        self.tasks.start("batch", batch_evaluate, vae and vae.model, diffusion and diffusion.model, ds,
                         corruptions=list(CORRUPTIONS) if every else [s["corruption"]],
                         strengths=None if every else [s["strength"]], n_images=self.n_images.value(),
                         seed=s["seed"], refine_steps=s["refine_steps"], diffusion_samples=s["diffusion_samples"],
                         on_result=self.show_rows, progress=self.progress,
                         status=lambda text: self.statusChanged.emit(f"batch evaluation {text}"),
                         on_failed=self._on_failed, on_finished=self._on_finished)

    def cancel(self) -> None:
        if self.tasks.cancel("batch"):
            self.statusChanged.emit("cancelling…")

    def shutdown(self) -> None:
        self.tasks.shutdown(60)    # steps are short: a stopped worker ends within one model call

    def _on_failed(self, _message: str, _details: str) -> None:
        self._failed = True         # its message stays in the status

    def _on_finished(self, stopped: bool) -> None:
        if not self._failed:
            self.statusChanged.emit("batch evaluation cancelled" if stopped else "batch evaluation done")

    @Slot(object)
    def show_rows(self, rows: Any) -> None:
        self.rows = list(rows or [])
        self._table_inputs = self._run_inputs
        self.table.setRowCount(len(self.rows))
        for r, row in enumerate(self.rows):
            for c, key in enumerate(TABLE_FIELDS):
                v = row.get(key)
                text = f"{v:.4f}" if key == "seconds_per_image" else (f"{v:.3f}" if isinstance(v, float) else str(v))
                item = QTableWidgetItem(text)
                if isinstance(v, (int, float)):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)
        self.table.resizeColumnsToContents()
        self.inputs_changed()     # settings changed while it ran: the new table is out of date at once

    def save_table(self, path: str) -> None:
        from core.restoration.benchmark import write_csv, write_json

        if not self.rows:
            raise UserError("there is no table to save yet: run the batch evaluation first")
        (write_json if path.lower().endswith(".json") else write_csv)(self.rows, path)

    def _ask_save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save the table", "restore-eval.csv", "CSV (*.csv);;JSON (*.json)")
        if path:
            try:
                self.save_table(path)
            except UserError as e:
                show_error(self, str(e))
