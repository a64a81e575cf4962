"""Denoise / Enhance: corrupt a test image (or an image file), then compare every restorer side by side.

One row: clean | corrupted | VAE | VAE refined | diffusion | classical, each with PSNR / SSIM against the clean image
and the seconds it took; a toggle shows |restored - clean| instead. Below, the batch evaluation over N test images
(`core.restoration.benchmark.batch_evaluate`, restore_batch.py) fills a table that can be saved as CSV or JSON.

All restoration runs on a worker thread (`core.restoration.benchmark.restore_row` is an iterator yielding one
restorer's result at
a time, so the row fills in as they finish); the GUI thread only converts the numpy copies it receives into pixels.
diffusers is imported by the diffusion model on that worker thread, never here.

Nothing stale: the row remembers the inputs it was computed with (image, corruption, strength, seed, restorer settings,
the models). When an input changes, the result cells are greyed and say "out of date" and the header says which
settings they show, until Restore is pressed again (changing the input back makes them current again). A new image
clears the row. An image file of another size or colour than the models' is converted, and the panel says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import Qt, Slot
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGraphicsOpacityEffect,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import signals_blocked

from core.errors import UserError
from core.images import to_uint8
from core.restoration.corruptions import CORRUPTIONS, STRENGTHS
from explorer.handoffs import RESTORE
from explorer.panel import Panel
from explorer.panels.restore_batch import BatchEvaluation
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.dialogs import show_error
from explorer.widgets.image_grid import ImageGrid

COLUMNS = (("clean", "clean"), ("corrupted", "corrupted"), ("vae", "VAE"), ("vae-refined", "VAE refined"),
           ("diffusion", "diffusion"), ("classical", "classical"))
DIFF_GAIN = 2.0   # the difference view shows min(1, 2 |x - clean|)
STALE_TEXT = "out of date:\npress Restore"
SETTING_NAMES = {"corruption": "corruption", "strength": "strength", "seed": "seed",
                 "refine_steps": "refinement steps", "diffusion_samples": "diffusion samples", "image": "image",
                 "vae": "VAE", "diffusion": "diffusion model"}
MODE_NAMES = {"L": "grey", "1": "black-and-white", "P": "palette", "I;16": "16-bit grey", "I": "32-bit grey",
              "F": "float grey", "LA": "grey + alpha"}


def describe_settings(s: dict[str, Any]) -> str:
    """A row's inputs as the header line shows them."""
    return (f"{s['corruption']} (strength {s['strength']:g}), seed {s['seed']}, {s['refine_steps']} refinement steps, "
            f"{s['diffusion_samples']} diffusion samples, on {s['image']}")


class _Cell(QWidget):
    """One image of the row with its title and metrics underneath."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel(f"<b>{title}</b>")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.grid = ImageGrid()
        self.grid.setMinimumSize(96, 96)
        self.info = QLabel("–")
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setFixedHeight(3 * self.info.fontMetrics().lineSpacing() + 6)   # same height in every cell
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.grid, 1)
        lay.addWidget(self.info)
        self.image: np.ndarray | None = None      # float (C, H, W) in [0, 1]
        self.result_text = ""                     # the numbers of the shown result (kept while it is out of date)
        self.stale = False
        self._fade = QGraphicsOpacityEffect(self.grid)
        self._fade.setOpacity(0.3)
        self._fade.setEnabled(False)
        self.grid.setGraphicsEffect(self._fade)

    def clear(self, text: str = "–") -> None:
        self.image = None
        self.result_text = ""
        self.set_stale(False)
        self.grid.clear()
        self.info.setText(text)

    def show_result(self, text: str) -> None:
        self.result_text = text
        self.set_stale(False)
        self.info.setText(text)

    def set_stale(self, stale: bool) -> None:
        """Grey the image and replace its numbers by "out of date" (or show them again). A cell without a result
        (e.g. "no model loaded") keeps its text."""
        stale = stale and self.image is not None
        if stale == self.stale:
            return
        self.stale = stale
        self._fade.setEnabled(stale)
        self.info.setText(STALE_TEXT if stale else self.result_text)
        self.info.setToolTip(f"computed with other settings:\n{self.result_text}" if stale else "")
        self.info.setStyleSheet("color: #a05a00;" if stale else "")


class RestorePanel(Panel, QWidget):
    title = "Denoise/Enhance"
    uses = ("vae", "diffusion")
    accepts = (RESTORE,)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = PanelTasks(self)      # "row": the single-image restoration
        self._file_image: np.ndarray | None = None    # float (C, H, W) from "Open image..."
        self._file_path: str | None = None
        self._file_shape: tuple[int, int] | None = None   # (channels, size) the file was converted to
        self._split = "test"
        self._shown_inputs: dict[str, Any] | None = None  # what the result cells were computed with
        self._run_inputs: dict[str, Any] | None = None    # what the running restoration computes

        # ---- controls
        self.index = QSpinBox()
        self.index.setRange(0, 0)
        self.index.setToolTip("index of the image in the dataset's test split")
        self.open_button = QPushButton("Open image…")
        self.source_label = QLabel("test image")
        self.conversion = QLabel()     # what an image file became for the models (hidden when nothing changed)
        self.conversion.setWordWrap(True)
        self.conversion.setStyleSheet("color: #a05a00;")
        self.conversion.hide()
        self.row_header = QLabel("Press Restore to corrupt the image and compare the restorers.")
        self.row_header.setWordWrap(True)
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
        self.export_button = QPushButton("Export PNG…")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel()
        self.status.setWordWrap(True)

        form = QFormLayout()
        src = QHBoxLayout()
        src.addWidget(self.index)
        src.addWidget(self.open_button)
        src.addWidget(self.source_label, 1)
        form.addRow("Image", src)
        form.addRow("", self.conversion)
        cor = QHBoxLayout()
        cor.addWidget(self.corruption)
        cor.addWidget(QLabel("strength"))
        cor.addWidget(self.strength)
        cor.addWidget(self.strength_unit)
        cor.addWidget(QLabel("seed"))
        cor.addWidget(self.seed)
        cor.addStretch(1)
        form.addRow("Corruption", cor)
        opts = QHBoxLayout()
        opts.addWidget(QLabel("refinement steps"))
        opts.addWidget(self.refine_steps)
        opts.addWidget(QLabel("diffusion samples"))
        opts.addWidget(self.diffusion_samples)
        opts.addStretch(1)
        form.addRow("Restorers", opts)
        buttons = QHBoxLayout()
        for w in (self.run_button, self.cancel_button, self.diff_toggle, self.export_button):
            buttons.addWidget(w)
        buttons.addWidget(self.progress, 1)

        self.cells = {key: _Cell(title) for key, title in COLUMNS}
        self.row_widget = QWidget()
        row = QHBoxLayout(self.row_widget)
        row.setContentsMargins(0, 0, 0, 0)
        for cell in self.cells.values():
            row.addWidget(cell, 1)

        self.batch = BatchEvaluation(self.state, self.restore_settings)
        self.batch.statusChanged.connect(self.status.setText)
        self.batch.busyChanged.connect(self._update_buttons)
        self.tasks.busyChanged.connect(self._update_buttons)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addLayout(buttons)
        lay.addWidget(self.row_header)
        lay.addWidget(self.row_widget, 2)
        lay.addWidget(self.status)
        lay.addWidget(self.batch, 1)

        # ---- wiring
        self.corruption.currentTextChanged.connect(self._on_corruption)
        self.run_button.clicked.connect(self.run_restore)
        self.cancel_button.clicked.connect(self.cancel)
        self.diff_toggle.toggled.connect(lambda _: self._redraw_all())
        self.export_button.clicked.connect(self._ask_export)
        self.open_button.clicked.connect(self._ask_open)
        self.index.valueChanged.connect(self._on_index)
        state.datasetChanged.connect(self._on_dataset)
        state.imageSelected.connect(self.select_image)
        state.restorationRequested.connect(self._take_image)
        state.vaeChanged.connect(self._on_models)
        state.diffusionChanged.connect(self._on_models)
        for box in (self.strength, self.seed, self.refine_steps, self.diffusion_samples):
            box.valueChanged.connect(self._inputs_changed)
        self._on_corruption(self.corruption.currentText())
        self._on_dataset()

    # ------------------------------------------------------------------------------------------------ staleness
    def row_inputs(self) -> dict[str, Any]:
        """Everything the row's results depend on: the settings above, the image and the models."""
        return {**self.restore_settings(), "image": self.source_label.text(), "vae": self.state.vae,
                "diffusion": self.state.diffusion}

    def _changed_inputs(self, computed: dict[str, Any]) -> list[str]:
        now = self.row_inputs()

        def differs(k: str) -> bool:   # models compare by identity (a new snapshot is a new model), the rest by value
            return now[k] is not computed[k] if k in ("vae", "diffusion") else now[k] != computed[k]

        return [k for k in now if differs(k)]

    def results_out_of_date(self) -> bool:
        """The row shows results whose inputs differ from the settings above."""
        return any(self.cells[k].stale for k in self.cells)

    def _inputs_changed(self, *_: Any) -> None:
        """An input changed: grey the results computed with other inputs (or un-grey them when changed back)."""
        self.batch.inputs_changed()
        shown = self._run_inputs if self._row_busy() else self._shown_inputs
        if shown is None:
            return
        changed = self._changed_inputs(shown)
        for key, cell in self.cells.items():
            if key != "clean":
                cell.set_stale(bool(changed))
        self._show_header(shown, changed, running=self._row_busy())

    def _show_header(self, computed: dict[str, Any], changed: list[str], *, running: bool) -> None:
        what = describe_settings(computed)
        if changed:
            names = ", ".join(SETTING_NAMES[k] for k in changed)
            self.row_header.setText(f"<b>Out of date</b> ({names} changed): the results below were computed for "
                                    f"{what}. Press Restore to recompute.")
            self.row_header.setStyleSheet("color: #a05a00;")
        else:
            self.row_header.setText(("Restoring " if running else "Results for ") + what
                                    + (" — scores against the converted image" if self._file_shape else ""))
            self.row_header.setStyleSheet("")

    # ------------------------------------------------------------------------------------------------ inputs
    def _on_corruption(self, name: str) -> None:
        default, low, high, unit = STRENGTHS[name]
        self.strength.blockSignals(True)     # one staleness check for the whole change, below
        self.strength.setRange(low, high)
        self.strength.setValue(default)
        self.strength.blockSignals(False)
        self.strength.setEnabled(low != high)
        self.strength_unit.setText(unit)
        self._inputs_changed()

    def _on_models(self) -> None:
        """A model was replaced: an image file is converted again if the new models want another shape, and the
        results computed with the old models are out of date."""
        self._update_buttons()
        if self._file_path is not None and self._file_shape != self._target_shape():
            try:
                self.load_image_file(self._file_path)
                return
            except UserError:
                pass     # the file went away: keep the converted copy; the row drops models of another shape
        self._inputs_changed()

    def _on_dataset(self) -> None:
        ds = self.state.dataset
        n = len(ds.test) if ds is not None else 0
        self.index.setRange(0, max(0, n - 1))
        self._update_buttons()
        self._show_clean()

    def _forget_file(self) -> None:
        self._file_image = None
        self._file_path = self._file_shape = None
        self.conversion.hide()
        self.cells["clean"].title.setText("<b>clean</b>")

    def _on_index(self, _value: int) -> None:
        self._forget_file()
        self._split = "test"
        self._show_clean()

    def _take_image(self) -> None:
        """An image sent here (state.restoration_request) becomes the clean image; the status bar says which."""
        request = self.state.restoration_request
        if request is None:
            return
        if request.dataset is not None and request.dataset is not self.state.dataset:
            self.state.statusMessage.emit("the selection was made on another dataset than the one loaded now; "
                                          "select again in the latent map")
            return
        self.select_image(request.split, request.index)
        self.state.statusMessage.emit(f"{request.split} image {request.index} ({request.description}) in Denoise / "
                                      "Enhance")

    @Slot(str, int)
    def select_image(self, split: str, index: int) -> None:
        """Follow another panel's choice (state.imageSelected)."""
        ds = self.state.dataset
        if ds is None or split not in ("train", "val", "test") or not 0 <= index < len(ds.split(split)):
            return
        self._forget_file()
        self._split = split
        with signals_blocked(self.index):
            self.index.setRange(0, max(0, len(ds.split(split)) - 1))
            self.index.setValue(index)
        self._show_clean()

    def _target_shape(self) -> tuple[int, int]:
        """(channels, size) the loaded models (or the dataset) expect."""
        for source in (self.state.vae, self.state.diffusion):
            if source is not None:
                return int(source.meta.channels), int(source.meta.image_size)
        if self.state.dataset is not None:
            return int(self.state.dataset.meta.channels), int(self.state.dataset.meta.image_size)
        return 1, 16

    def load_image_file(self, path: str) -> None:
        """Open an image file, converted to the models' channels and resized to their size. When that changes the
        image, the panel says so, shows the converted image as the clean reference, and the scores are marked as
        computed on it."""
        from PIL import Image, UnidentifiedImageError

        # What core's folder reader does with each image of a folder dataset: EXIF orientation, 16-bit greyscale
        # scaled (not clipped white), alpha composited on black, then a centre crop to a square.
        from core.data.sources import fit_square

        channels, size = self._target_shape()
        try:
            with Image.open(path) as im:
                (w, h), mode = im.size, im.mode
                target = "L" if channels == 1 else "RGB"
                im = fit_square(im, target, size)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
            raise UserError(f"could not read {path} as an image ({e}); choose a PNG, JPEG or similar file") from None
        self._file_image = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
        self._file_path = path
        target_mode = "L" if channels == 1 else "RGB"
        converted = (w, h) != (size, size) or mode != target_mode
        self._file_shape = (channels, size) if converted else None
        self.source_label.setText(Path(path).name)
        if converted:
            def colour(m: str) -> str:
                return MODE_NAMES.get(m, m)

            note = (f"converted from {w}x{h} {colour(mode)} to {size}x{size} {colour(target_mode)} for this model"
                    + (" (centre-cropped to a square)" if w != h else "")
                    + ": the restorers see, and the scores compare against, the converted image shown as clean.")
            self.conversion.setText(note)
            self.conversion.show()
            self.cells["clean"].title.setText("<b>clean</b> (converted)")
        else:
            self.conversion.hide()
            self.cells["clean"].title.setText("<b>clean</b>")
        self._show_clean()
        self._update_buttons()

    def clean_image(self) -> np.ndarray | None:
        """The chosen clean image, float (C, H, W) in [0, 1], or None when there is nothing to pick from."""
        if self._file_image is not None:
            return self._file_image
        ds = self.state.dataset
        if ds is None or len(ds.split(self._split)) == 0:
            return None
        img = ds.split(self._split).images[self.index.value()].cpu().numpy()
        return img.astype(np.float32) / 255.0

    def _show_clean(self) -> None:
        """A new image: the row starts empty (its results belonged to the old image)."""
        for cell in self.cells.values():
            cell.clear()
        self._shown_inputs = None
        self.tasks.cancel("row")     # results still arriving are for the old image: drop them
        self.row_header.setText("Press Restore to corrupt the image and compare the restorers.")
        self.row_header.setStyleSheet("")
        img = self.clean_image()
        if img is None:
            self.cells["clean"].info.setText("no dataset loaded")
            return
        if self._file_image is None:
            self.source_label.setText(f"{self._split} image {self.index.value()}")
        text = "reference"
        if self._file_shape is not None:
            c, size = self._file_shape
            text = f"reference: the image\nconverted to {size}x{size}\n{'grey' if c == 1 else 'RGB'}"
        self._set_cell("clean", img, text)

    def restore_settings(self) -> dict[str, Any]:
        """The corruption and restorer settings chosen above (the batch evaluation uses them too)."""
        return {"corruption": self.corruption.currentText(), "strength": self.strength.value(),
                "seed": self.seed.value(), "refine_steps": self.refine_steps.value(),
                "diffusion_samples": self.diffusion_samples.value()}

    # ------------------------------------------------------------------------------------------------ restore
    def run_restore(self) -> None:
        img = self.clean_image()
        if img is None:
            show_error(self, "No image to restore: load a dataset (File menu) or open an image file.")
            return
        if self.busy():
            return
        import torch

        from core.restoration.benchmark import restore_row

        self._show_clean()
        self._run_inputs = self.row_inputs()
        self._show_header(self._run_inputs, [], running=True)
        vae, diffusion = self.state.vae, self.state.diffusion
        if vae is not None and (vae.meta.channels, vae.meta.image_size) != img.shape[:2]:
            vae = None
        if diffusion is not None and (diffusion.meta.channels, diffusion.meta.image_size) != img.shape[:2]:
            diffusion = None
        for key, model in (("vae", vae), ("vae-refined", vae), ("diffusion", diffusion)):
            self.cells[key].info.setText("working…" if model is not None else "no model loaded")
        self.cells["corrupted"].info.setText("working…")
        self.cells["classical"].info.setText("working…")
        clean = torch.from_numpy(img.copy())[None]
        s = self.restore_settings()
        self.status.setText("restoring…")
        self.tasks.start("row", restore_row, clean, s["corruption"], s["strength"], vae=vae and vae.model,
                         diffusion=diffusion and diffusion.model, seed=s["seed"], refine_steps=s["refine_steps"],
                         diffusion_samples=s["diffusion_samples"], on_event=self._on_restore_event,
                         progress=self.progress, status=self.status.setText, on_finished=self._on_finished)

    def _on_restore_event(self, item: Any) -> None:
        key = item["restorer"]
        if key.startswith("classical"):
            method = key.partition(":")[2]
            self.cells["classical"].title.setText(f"<b>classical</b> ({method})")
            key = "classical"
        text = f"PSNR {item['psnr'][0]:.2f} dB\nSSIM {item['ssim'][0]:.3f}"
        if key != "corrupted":
            text += f"\n{item['seconds']:.3f} s"
        self._set_cell(key, item["images"][0], text)
        self._shown_inputs = self._run_inputs
        self.cells[key].set_stale(bool(self._changed_inputs(self._run_inputs)))

    def _set_cell(self, key: str, img: np.ndarray, text: str) -> None:
        cell = self.cells[key]
        cell.image = img
        cell.show_result(text)
        self._redraw(key)

    def _redraw(self, key: str) -> None:
        cell, clean = self.cells[key], self.cells["clean"].image
        if cell.image is None:
            return
        shown = cell.image
        if self.diff_toggle.isChecked() and clean is not None and key != "clean" and clean.shape == shown.shape:
            shown = np.minimum(1.0, DIFF_GAIN * np.abs(shown - clean))
        cell.grid.set_images(to_uint8(shown)[None], columns=1)

    def _redraw_all(self) -> None:
        for key in self.cells:
            self._redraw(key)

    # ------------------------------------------------------------------------------------------------ workers
    def _row_busy(self) -> bool:
        return self.tasks.busy("row")

    def busy(self) -> bool:
        """The single-image row or the batch evaluation is running."""
        return self._row_busy() or self.batch.busy()

    def cancel(self) -> None:
        if self.tasks.cancel("row"):
            self.status.setText("cancelling…")
        self.batch.cancel()

    def _on_finished(self, stopped: bool) -> None:
        if not self.status.text().startswith("failed"):    # a failure's message stays
            self.status.setText("cancelled" if stopped else "done")
        if self._shown_inputs is None:
            self.row_header.setText("Press Restore to corrupt the image and compare the restorers.")
        self._inputs_changed()     # the header now says what the row shows (or that it is out of date)

    def _update_buttons(self) -> None:
        row_busy = self._row_busy()
        has_data = self.state.dataset is not None or self._file_image is not None
        self.run_button.setEnabled(not self.busy() and has_data)
        self.cancel_button.setEnabled(row_busy)
        self.batch.update_buttons(row_busy)

    def shutdown(self) -> None:
        self.tasks.cancel_all()
        self.batch.shutdown()
        self.tasks.shutdown(60)     # steps are short: a stopped worker ends within one model call

    # ------------------------------------------------------------------------------------------------ files
    def export_png(self, path: str) -> None:
        """The row (with its captions) as shown."""
        if not self.row_widget.grab().save(path, "PNG"):
            raise UserError(f"could not write {path}: check the folder exists and is writable")

    def _ask_export(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export the row as PNG", "restore.png", "PNG images (*.png)")
        if path:
            self._guard(self.export_png, path)

    def _ask_open(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open an image", "", "Images (*.png *.jpg *.jpeg *.bmp *.gif "
                                              "*.tif *.tiff *.webp);;All files (*)")
        if path:
            self._guard(self.load_image_file, path)

    def _guard(self, fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except UserError as e:
            show_error(self, str(e))
