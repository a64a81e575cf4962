"""The Codes tab: a VQ-VAE's code editor and codebook usage.

Pick an image (a split, a class, an index, or the app's selection): its code grid is shown cell by cell (code index
on the code's colour) beside the original and the decode of the grid. Pick a code from the codebook palette (each
code's decoded look) and paint cells with it: the decode follows at once. Under them, the codebook's usage over the
split (cells per code, counted on a worker) with the dead codes marked. A continuous-latent VAE gets one plain line.

The views listen to one `CodesModel` (model.py); this class only builds them and feeds the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from explorer.panel import Panel
from explorer.panels.codes.grid_view import CodeGridView, ImagePane
from explorer.panels.codes.model import CodesModel, looks_job, usage_job
from explorer.panels.codes.palette import CodePalette, UsageHistogram
from explorer.panels.shown import WorkWhenShown
from explorer.panels.tasks import PanelTasks
from explorer.widgets.panel_controls import combo_box, progress_bar, status_label, status_row

NOT_VQ = ("The code editor needs a VQ-VAE; this is a continuous-latent VAE: see the Latent map tab (train one with "
          "`vae-explorer train --model vqvae`, or open a VQ-VAE checkpoint).")
SPLITS = ("test", "val", "train")


class CodesPanel(WorkWhenShown, Panel, QWidget):
    title = "Codes"
    uses = ("vae",)

    def __init__(self, view: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.model = CodesModel(self)
        self.tasks = PanelTasks(self)
        self._split: Any = None        # the dataset split the images are picked from
        self._build()
        self.model.codesChanged.connect(self._show_images)
        self.model.usageChanged.connect(self._describe_usage)
        view.vaeChanged.connect(self.reload)
        view.datasetChanged.connect(self.reload)
        view.imageSelected.connect(self.pick)
        self.reload()

    def _build(self) -> None:
        self.split_box = combo_box(SPLITS, lambda _name: self._on_split())
        self.class_box = QComboBox()
        self.class_box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.class_box.activated.connect(self._on_class)
        self.index = QSpinBox()
        self.index.setPrefix("image ")
        self.index.valueChanged.connect(lambda _value: self._show_picked())
        self.selection_button = QPushButton("Use the selection")
        self.selection_button.setToolTip("The first image of the app's selection (picked in the latent map or the "
                                         "Dataset tab)")
        self.selection_button.clicked.connect(self.use_selection)
        self.reset_button = QPushButton("Reset codes")
        self.reset_button.setToolTip("The grid back to the image's own codes")
        self.reset_button.clicked.connect(self.model.reset)
        top = QHBoxLayout()
        for w in (self.split_box, self.class_box, self.index, self.selection_button, self.reset_button):
            top.addWidget(w)
        top.addStretch(1)
        self.grid_view = CodeGridView(self.model)
        self.original = ImagePane("original\n")
        self.decoded = ImagePane("decoded from\nthe grid")
        self.palette = CodePalette(self.model)
        images = QSplitter()
        for w in (self.grid_view, self.original, self.decoded, self.palette):
            images.addWidget(w)
        images.setSizes([330, 230, 230, 320])
        self.histogram = UsageHistogram(self.model)
        self.usage_line = QLabel("")
        self.usage_line.setWordWrap(True)     # two lines in a 1024-px window rather than a sideways scroll
        self.status = status_label()
        self.progress = progress_bar()
        self.content = QWidget()
        inner = QVBoxLayout(self.content)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addLayout(top)
        inner.addWidget(images, 3)
        inner.addWidget(self.usage_line)
        inner.addWidget(self.histogram, 2)
        lay = QVBoxLayout(self)
        lay.addWidget(self.content, 1)
        lay.addLayout(status_row(self.status, self.progress))

    # ---- loading ----------------------------------------------------------------------------------------------------
    def problem(self) -> str:
        """Why this tab cannot show the shown model's codes ("" when it can)."""
        vae, dataset = self.view.vae, self.view.dataset
        if vae is None or dataset is None:
            return "Load a VQ-VAE and a dataset to edit an image's codes (File > Open checkpoint)."
        if vae.config.model_kind != "vqvae":
            return NOT_VQ
        if (dataset.meta.channels, dataset.meta.image_size) != (vae.meta.channels, vae.meta.image_size):
            return (f"The VQ-VAE was trained on {vae.meta.channels}x{vae.meta.image_size}px images, the dataset has "
                    f"{dataset.meta.channels}x{dataset.meta.image_size}px: load a matching dataset.")
        return ""

    def reload(self) -> None:
        """A new model or dataset: clear, then (when shown) pick the first image and count the codebook's use."""
        if self.defer_while_hidden():
            return
        self.tasks.cancel_all()
        problem = self.problem()
        self.content.setVisible(not problem)
        self.status.setText(problem)
        if problem:
            self.model.set_model(None)
            return
        vae = self.view.vae
        self.model.set_model(vae.model)
        self._fill_classes(vae.meta.class_names)
        self._on_split()
        self.tasks.start("looks", looks_job, vae.model, on_result=self.model.set_looks, status=self.status.setText)

    def _fill_classes(self, names: tuple[str, ...]) -> None:
        self.class_box.blockSignals(True)
        self.class_box.clear()
        self.class_box.addItem("any class")
        self.class_box.addItems([f"class {n}" for n in names])
        self.class_box.blockSignals(False)

    def _on_split(self) -> None:
        if self.model.vq is None or self.view.dataset is None:
            return
        name = self.split_box.currentText()
        self._split = self.view.dataset.split(name)
        n = len(self._split)
        self.index.blockSignals(True)
        self.index.setRange(0, max(0, n - 1))
        self.index.setSuffix(f" of {n:,}")
        self.index.blockSignals(False)
        self._show_picked()
        self.model.set_usage(None)
        self.status.setText(f"counting the codes of the {n:,} {name} images…")
        self.tasks.start("usage", usage_job, self.model.vq, self._split.images,
                         on_result=lambda counts: self._on_usage(counts, name), progress=self.progress,
                         status=self.status.setText)

    def _on_usage(self, counts: np.ndarray | None, split: str) -> None:
        if counts is not None:
            self.model.set_usage(counts, split)
            self.status.setText("Pick a code in the palette (or a bar), then click or drag on the grid to paint.")

    # ---- picking an image -------------------------------------------------------------------------------------------
    def _on_class(self, row: int) -> None:
        """Jump to the first image of the chosen class at or after the current index (wrapping round)."""
        if row <= 0 or self._split is None:
            return
        found = np.flatnonzero(self._split.labels.cpu().numpy() == row - 1)
        if len(found):
            later = found[found >= self.index.value()]
            self.index.setValue(int(later[0] if len(later) else found[0]))

    def pick(self, split: str, index: int) -> None:
        """Show image `index` of `split` (the app's imageSelected, or a test)."""
        if split in SPLITS and self.model.vq is not None:
            if self.split_box.currentText() != split:
                self.split_box.setCurrentText(split)
            self.index.setValue(int(index))

    def use_selection(self) -> None:
        sel = self.view.selection
        if sel is None or len(sel) == 0:
            self.status.setText("nothing is selected: select images in the latent map or the Dataset tab first")
            return
        problem = sel.problem_with(self.view.dataset)
        if problem:
            self.status.setText(problem)
            return
        self.pick(sel.splits[0], int(sel.indices[0]))

    def _show_picked(self) -> None:
        split = self._split
        if split is None or self.model.vq is None or len(split) == 0:
            return
        k = min(self.index.value(), len(split) - 1)
        label = int(split.labels[k])
        names = self.view.vae.meta.class_names
        cls = f", class {names[label]}" if 0 <= label < len(names) else ""
        self.model.set_image(split.images[k].cpu().numpy(), f"{self.split_box.currentText()} image {k}{cls}")
        if 0 <= label < len(names) and self.class_box.currentIndex() not in (0, label + 1):
            self.class_box.setCurrentIndex(label + 1)

    # ---- showing ----------------------------------------------------------------------------------------------------
    def _show_images(self) -> None:
        m = self.model
        self.original.show_array(m.original)
        self.decoded.show_array(m.decoded)
        if m.original is None:
            return
        self.original.title.setText(f"original\n{m.caption}")
        edited = m.edited_cells()
        self.decoded.title.setText(f"decoded from {m.grid}x{m.grid} codes\n" +
                                   (f"{edited} repainted" if edited else "(the image's own)"))

    def _describe_usage(self) -> None:
        m = self.model
        if m.usage is None:
            self.usage_line.setText("codebook usage: counting…" if m.vq is not None else "")
            return
        total = int(m.usage.sum())
        p = m.usage[m.usage > 0] / max(1, total)
        perplexity = float(np.exp(-(p * np.log(p)).sum()))
        dead = len(m.dead_codes())
        self.usage_line.setText(
            f"codebook usage over the {m.usage_split} split: {total:,} cells, {m.codebook_size - dead} of "
            f"{m.codebook_size} codes used, {dead} dead (red, crossed out), perplexity {perplexity:.1f}")

    def shutdown(self) -> None:
        self.tasks.shutdown()
