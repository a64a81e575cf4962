"""Denoise / Enhance: corrupt a test image (or an image file), then compare every restorer side by side.

One row: [original file] | clean | corrupted | VAE | VAE refined | diffusion | classical, each with PSNR / SSIM
against the clean image and the seconds it took; a toggle shows |restored - clean| instead. The images zoom and pan
together with a crosshair and a read-out of the pixel under it in every column (restore_cells.py). Below, the batch
evaluation over N test images (`core.restoration.benchmark.batch_evaluate`, restore_batch.py) fills a table that can
be saved as CSV or JSON.

A composition of small views: the controls (restore_controls.py), the row header and the linked row
(restore_cells.py), the domain note (restore_domain.py) and the batch table; this class holds the chosen image and
runs the restoration. An image file (Open image… or dropped onto the tab) is read as folder datasets are
(restore_source.py); the original file is shown beside its conversion, and a note says when it is unlike the
training data.

All restoration runs on a worker thread (`core.restoration.benchmark.restore_row` is an iterator yielding one
restorer's result at a time, so the row fills in as they finish); the GUI thread only converts the numpy copies it
receives into pixels. diffusers is imported by the diffusion model on that worker thread, never here.

Nothing stale: the row remembers the inputs it was computed with (image, corruption, strength, seed, restorer settings,
the models). When an input changes, the result cells are greyed and say "out of date" and the header says which
settings they show, until Restore is pressed again (changing the input back makes them current again). A new image
clears the row. An image file of another size or colour than the models' is converted, and the panel says so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Slot
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget
from superqt.utils import signals_blocked

from core.errors import UserError
from explorer.handoffs import RESTORE
from explorer.panel import Panel
from explorer.panels.restore_batch import BatchEvaluation
from explorer.panels.restore_cells import STALE_TEXT, RestoreRow, RowHeader, changed_inputs, describe_settings
from explorer.panels.restore_controls import RestoreControls
from explorer.panels.restore_domain import DomainCheck
from explorer.panels.restore_source import OpenedFile, read_image_file
from explorer.panels.tasks import PanelTasks
from explorer.settings import Persisted
from explorer.state import AppState
from explorer.widgets.dialogs import show_error
from explorer.widgets.file_drop import FileDrop

__all__ = ["STALE_TEXT", "RestorePanel", "describe_settings"]


def target_shape(state: AppState) -> tuple[int, int]:
    """(channels, size) the loaded models (or the dataset) expect."""
    for source in (state.vae, state.diffusion, state.dataset):
        if source is not None:
            return int(source.meta.channels), int(source.meta.image_size)
    return 1, 16


def _guarded(panel: RestorePanel, fn: Any, *args: Any) -> None:
    """fn(*args); a UserError is one line, in the status and a dialog."""
    try:
        fn(*args)
    except UserError as e:
        panel.status.setText(str(e))
        show_error(panel, str(e))


class RestorePanel(Panel, QWidget):
    title = "Denoise/Enhance"
    uses = ("vae", "diffusion")
    accepts = (RESTORE,)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.tasks = PanelTasks(self)      # "row": the single-image restoration
        self.file: OpenedFile | None = None       # the opened image file (None: a dataset image)
        self._converted = False                   # ... which the models see converted (another size or colour)
        self._split = "test"
        self._shown_inputs: dict[str, Any] | None = None  # what the result cells were computed with
        self._run_inputs: dict[str, Any] | None = None    # what the running restoration computes
        self.controls = c = RestoreControls()
        Persisted(self.state.settings, "restore.corruption", c.corruption.currentText(), get=c.corruption.currentText,
                  set_=c.corruption.setCurrentText, changed=c.corruption.currentTextChanged,
                  owner=c.corruption)     # the corruption chosen last time (explorer/settings.py)
        self.row_header = RowHeader()
        self.row = RestoreRow()
        self.cells = self.row.cells
        self.status = QLabel()
        self.status.setWordWrap(True)
        self.batch = BatchEvaluation(self.state, c.settings)
        self.domain = DomainCheck(self)
        # the controls other code and the tests reach through the panel
        (self.index, self.corruption, self.strength, self.seed, self.refine_steps, self.diffusion_samples,
         self.run_button, self.cancel_button, self.diff_toggle, self.progress, self.source_label, self.conversion) = (
            c.index, c.corruption, c.strength, c.seed, c.refine_steps, c.diffusion_samples, c.run_button,
            c.cancel_button, c.diff_toggle, c.progress, c.source_label, c.conversion)
        lay = QVBoxLayout(self)
        lay.addWidget(c)
        lay.addWidget(self.row_header)
        lay.addWidget(self.row, 2)
        lay.addWidget(self.status)
        lay.addWidget(self.batch, 1)
        self._wire()
        self._on_dataset()

    def _wire(self) -> None:
        c, state = self.controls, self.state
        c.settingsChanged.connect(self._inputs_changed)
        c.run_button.clicked.connect(self.run_restore)
        c.cancel_button.clicked.connect(self.cancel)
        c.diff_toggle.toggled.connect(self.row.set_difference)
        c.fit_button.clicked.connect(self.row.links.refit)
        c.fileChosen.connect(self.open_file)
        c.exportChosen.connect(lambda path: _guarded(self, self.export_png, path))
        c.index.valueChanged.connect(self._on_index)
        FileDrop(self).dropped.connect(self.open_file)
        self.domain.noteChanged.connect(lambda text: c.show_note(c.domain_note, text))
        self.batch.statusChanged.connect(self.status.setText)
        self.batch.busyChanged.connect(self._update_buttons)
        self.tasks.busyChanged.connect(self._update_buttons)
        state.datasetChanged.connect(self._on_dataset)
        state.imageSelected.connect(self.select_image)
        state.restorationRequested.connect(self._take_image)
        state.vaeChanged.connect(self._on_models)
        state.diffusionChanged.connect(self._on_models)

    # ------------------------------------------------------------------------------------------------ staleness
    def row_inputs(self) -> dict[str, Any]:
        """Everything the row's results depend on: the settings above, the image and the models."""
        return {**self.controls.settings(), "image": self.source_label.text(), "vae": self.state.vae,
                "diffusion": self.state.diffusion}

    def results_out_of_date(self) -> bool:
        """The row shows results whose inputs differ from the settings above."""
        return self.row.out_of_date()

    def _inputs_changed(self, *_: Any) -> None:
        """An input changed: grey the results computed with other inputs (or un-grey them when changed back)."""
        self.batch.inputs_changed()
        running = self.tasks.busy("row")
        shown = self._run_inputs if running else self._shown_inputs
        if shown is None:
            return
        changed = changed_inputs(self.row_inputs(), shown)
        self.row.mark_stale(bool(changed))
        self.row_header.show_inputs(shown, changed, running=running, converted=self._converted)

    # ------------------------------------------------------------------------------------------------ inputs
    def _on_models(self) -> None:
        """A model was replaced: an image file is converted again if the new models want another shape, and the
        results computed with the old models are out of date."""
        self._update_buttons()
        if self.file is not None and self.file.image.shape[:2] != target_shape(self.state):
            try:
                self.load_image_file(self.file.path)
                return
            except UserError:
                pass     # the file went away: keep the converted copy; the row drops models of another shape
        self._inputs_changed()
        self.domain.check(self.clean_image(), self.state.vae, self.state.dataset)

    def _on_dataset(self) -> None:
        ds = self.state.dataset
        n = len(ds.test) if ds is not None else 0
        self.index.setRange(0, max(0, n - 1))
        self._update_buttons()
        self._show_clean()

    def _set_file(self, file: OpenedFile | None) -> None:
        self.file = file
        self._converted = file is not None and file.converted
        c = self.controls
        c.show_note(c.conversion, file.note if file is not None else "")
        self.cells["clean"].title.setText("<b>clean</b> (converted)" if self._converted else "<b>clean</b>")
        if file is None:
            self.row.show_original(None)
            return
        w, h = file.original_size
        self.row.show_original(file.original, QRectF(*file.original_rect), file.image.shape[-1], f"{w}x{h}")
        self.source_label.setText(file.name)

    def _on_index(self, _value: int) -> None:
        self._set_file(None)
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
        self._set_file(None)
        self._split = split
        with signals_blocked(self.index):
            self.index.setRange(0, max(0, len(ds.split(split)) - 1))
            self.index.setValue(index)
        self._show_clean()

    def load_image_file(self, path: str) -> None:
        """Open an image file, read as a folder dataset's images are (core.data.sources.fit_square: the models'
        channels and size). When that changes the image, the panel says so, shows the converted image as the clean
        reference (the original beside it), and the scores are marked as computed on it. UserError if unreadable."""
        self._set_file(read_image_file(path, *target_shape(self.state)))
        self._show_clean()
        self._update_buttons()

    def open_file(self, path: str) -> None:
        """Open image… or a file dropped onto the tab: a file that is not an image is one line, the image kept."""
        _guarded(self, self.load_image_file, path)

    def clean_image(self) -> np.ndarray | None:
        """The chosen clean image, float (C, H, W) in [0, 1], or None when there is nothing to pick from."""
        if self.file is not None:
            return self.file.image
        ds = self.state.dataset
        if ds is None or len(ds.split(self._split)) == 0:
            return None
        img = ds.split(self._split).images[self.index.value()].cpu().numpy()
        return img.astype(np.float32) / 255.0

    def _show_clean(self) -> None:
        """A new image: the row starts empty (its results belonged to the old image)."""
        self.row.clear()
        self._shown_inputs = None
        self.tasks.cancel("row")     # results still arriving are for the old image: drop them
        self.row_header.prompt()
        img = self.clean_image()
        self.domain.check(self.clean_image(), self.state.vae, self.state.dataset)
        if img is None:
            self.cells["clean"].info.setText("no dataset loaded")
            return
        if self.file is None:
            self.source_label.setText(f"{self._split} image {self.index.value()}")
        text = "reference"
        if self._converted:
            c, size = img.shape[:2]
            text = f"reference: the image\nconverted to {size}x{size}\n{'grey' if c == 1 else 'RGB'}"
        self.row.set_cell("clean", img, text)

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
        self.row_header.show_inputs(self._run_inputs, [], running=True, converted=self._converted)
        vae, diffusion = self.state.vae, self.state.diffusion
        if vae is not None and (vae.meta.channels, vae.meta.image_size) != img.shape[:2]:
            vae = None
        if diffusion is not None and (diffusion.meta.channels, diffusion.meta.image_size) != img.shape[:2]:
            diffusion = None
        refinable = vae if vae is None or vae.config.model_kind != "vqvae" else None   # a VQ-VAE has no z to refine
        for key, model in (("vae", vae), ("vae-refined", refinable), ("diffusion", diffusion)):
            loading = self.state.loading.get(key, "") if key == "diffusion" else ""   # a bundled one on its way
            self.cells[key].info.setText("working…" if model is not None else
                                         f"{loading}; Restore again when it is in" if loading else "no model loaded")
        if refinable is None and vae is not None:
            self.cells["vae-refined"].info.setText("a VQ-VAE: no latent to refine")
        self.cells["corrupted"].info.setText("working…")
        self.cells["classical"].info.setText("working…")
        clean = torch.from_numpy(img.copy())[None]
        s = self.controls.settings()
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
        self.row.set_cell(key, item["images"][0], text)
        self._shown_inputs = self._run_inputs
        self.cells[key].set_stale(bool(changed_inputs(self.row_inputs(), self._run_inputs)))

    # ------------------------------------------------------------------------------------------------ workers
    def busy(self) -> bool:
        """The single-image row or the batch evaluation is running."""
        return self.tasks.busy("row") or self.batch.busy()

    def cancel(self) -> None:
        if self.tasks.cancel("row"):
            self.status.setText("cancelling…")
        self.batch.cancel()

    def _on_finished(self, stopped: bool) -> None:
        if not self.status.text().startswith("failed"):    # a failure's message stays
            self.status.setText("cancelled" if stopped else "done")
        if self._shown_inputs is None:
            self.row_header.prompt()
        self._inputs_changed()     # the header now says what the row shows (or that it is out of date)

    def _update_buttons(self) -> None:
        row_busy = self.tasks.busy("row")
        has_data = self.state.dataset is not None or self.file is not None
        self.run_button.setEnabled(not self.busy() and has_data)
        self.cancel_button.setEnabled(row_busy)
        self.batch.update_buttons(row_busy)

    def shutdown(self) -> None:
        self.tasks.cancel_all()
        self.batch.shutdown()
        self.domain.shutdown()
        self.tasks.shutdown(60)     # steps are short: a stopped worker ends within one model call

    # ------------------------------------------------------------------------------------------------ files
    def export_png(self, path: str) -> None:
        """The row (with its captions) as shown."""
        if not self.row.images.grab().save(path, "PNG"):
            raise UserError(f"could not write {path}: check the folder exists and is writable")
