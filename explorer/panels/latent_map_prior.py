"""The prior's holes on the latent map: where a sampler's z land, against where the data's latents are.

"prior" picks a source of z (core/latent/samplers.py: N(0, I), the per-class Gaussian mixture, the diffusion prior);
it is fitted to the map's model and the dataset's training split on the panel's worker ("fitting…"; the fit is kept
for that model, so switching back is immediate), then as many z are drawn as the map shows points (at most
`MAX_SAMPLES`), with the map's class proportions. They are drawn through the same projection as the data (the map
model's `MapTransform`: exact for PCA and a 2-D latent) as a second density layer in `OVERLAY_COLOUR`, and the
per-class hole score (core/evaluation/holes.py: the share of z whose nearest data latent of their class is farther
than that latent's own k-th neighbour) fills the "prior holes" table. A new model or dataset marks the score out of
date and refits; a new projection only redraws.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QHeaderView,
    QLabel,
    QProgressBar,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from core.evaluation.holes import HoleScore, hole_score
from core.latent.samplers import make_sampler
from explorer.panels.latent_map_model import MapModel
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.latent_scatter import LatentScatter

SOURCES = {"off": None, "N(0, I)": "prior", "mixture": "density", "diffusion prior": "diffusion-prior"}
OVERLAY_COLOUR = "#e6007e"   # magenta: none of the class colours
MAX_SAMPLES = 5000
SEED = 0


def _holes_job(loaded, dataset, sampler, fit: bool, mu: np.ndarray, data_labels: np.ndarray | None,
               sample_labels: np.ndarray, progress=None, should_stop=None):
    """On the worker: fit the sampler (unless it is fitted), draw z for `sample_labels`, score them against the
    data's latents -> (sampler, z, HoleScore), or None when stopped."""
    import torch

    if fit and sampler.fit(loaded, dataset, progress=progress, should_stop=should_stop) is None:
        return None
    z = sampler.sample(torch.as_tensor(sample_labels), torch.Generator().manual_seed(SEED)).cpu().numpy()
    z = np.asarray(z, dtype=np.float32)
    score = hole_score(mu, data_labels, z, None if data_labels is None else sample_labels)
    return sampler, z, score


class PriorOverlay(QObject):
    shown = Signal()     # the user chose a source: the panel shows the "prior holes" table

    def __init__(self, model: MapModel, scatter: LatentScatter, tasks: PanelTasks, state: AppState,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.model, self.scatter, self.tasks, self.state = model, scatter, tasks, state
        self.diffusion_settings = None     # DiffusionPriorSettings for the diffusion prior (None: its defaults)
        self._fitted: dict[str, object] = {}      # source name -> sampler fitted to `_fitted_for`
        self._fitted_for = None                   # the model those samplers were fitted to
        self.z: np.ndarray | None = None          # the z shown, drawn by `source` for `_z_for` ...
        self.z_labels: np.ndarray | None = None
        self._z_for = None                        # ... the model they are z of, and the source that drew them
        self._z_source: str | None = None
        self.xy: np.ndarray | None = None         # ... and where they land on the map
        self.score: HoleScore | None = None
        self.source_box = QComboBox()
        self.source_box.addItems(list(SOURCES))
        self.source_box.setToolTip("overlay where a sampler's z land on the map (magenta), with the share of them "
                                   "in the prior's holes per class")
        self.source_box.currentTextChanged.connect(self._on_source)
        self.summary = QLabel("")
        self.widget = self._build()
        model.encoded.connect(self.refresh)
        model.positionsChanged.connect(self.draw)

    def _build(self) -> QWidget:
        self.title = QLabel("Choose a source of z under \"prior\" to see where it puts mass the data never visits.")
        self.title.setWordWrap(True)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["class", "hole score", "samples"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.note = QLabel("")
        self.note.setWordWrap(True)
        widget = QWidget()
        lay = QVBoxLayout(widget)
        for w in (self.title, self.progress, self.table, self.note):
            lay.addWidget(w)
        return widget

    def source(self) -> str | None:
        """The chosen sampler's registry name (None: off)."""
        return SOURCES[self.source_box.currentText()]

    def _on_source(self, _text: str) -> None:
        self.refresh()
        if self.source() is not None:
            self.shown.emit()

    # ---- fitting and scoring ----------------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Draw and score the chosen source's z for the map's model and latents (fitting it first if needed)."""
        name, m = self.source(), self.model
        self.tasks.cancel("prior")
        if name is None:
            self._clear("")
            return
        if m.latents is None or m.map_vae is None:
            return
        if self._fitted_for is not m.model:
            self._fitted, self._fitted_for = {}, m.model
        sampler = self._fitted.get(name)
        fit = sampler is None
        if fit:
            sampler = make_sampler(name, **({"settings": self.diffusion_settings}
                                            if name == "diffusion-prior" and self.diffusion_settings else {}))
        mu, data_labels, sample_labels = self._data()
        self._mark_out_of_date(("fitting " if fit else "sampling ") + f"{self.source_box.currentText()}…")
        model = m.model
        self.progress.show()
        self.tasks.start("prior", _holes_job, m.map_vae, m.map_dataset, sampler, fit, mu, data_labels,
                         sample_labels, on_result=lambda r, n=name, mdl=model: self._on_result(r, n, mdl),
                         progress=self.progress, progress_format="fit %p%{eta}", status=self.summary.setText,
                         on_finished=lambda _stopped: self.progress.hide())

    def _data(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """The data's latents and labels to score against, and the labels to sample (the map's class proportions)."""
        lat = self.model.latents
        conditional = self.model.model.num_classes > 0
        labels = lat.labels if conditional else np.zeros(len(lat.labels), np.int64)
        if len(labels) > MAX_SAMPLES:
            labels = np.random.default_rng(SEED).choice(labels, MAX_SAMPLES, replace=False)
        return lat.mu, (lat.labels if conditional else None), np.asarray(labels, np.int64)

    def _on_result(self, result, name: str, model) -> None:
        if result is None or model is not self.model.model or name != self.source():
            return                   # stopped, or for a model / source no longer shown
        sampler, self.z, self.score = result
        self._fitted[name] = sampler
        self._z_for, self._z_source = model, name
        self.z_labels = self._data()[2]
        self.draw()
        self._show_score()

    # ---- showing ----------------------------------------------------------------------------------------------------
    def draw(self) -> None:
        """The z through the map's projection, as the scatter's overlay (none while they are of another model)."""
        m = self.model
        if self.z is None or m.transform is None or self._z_for is not m.model or self._z_source != self.source():
            self.xy = None
        else:
            self.xy = m.transform.to_map(self.z)
        self.scatter.set_overlay(self.xy, OVERLAY_COLOUR)
        if self.xy is not None:
            self.note.setText(self._note())

    def _note(self) -> str:
        if self.model.transform is not None and not self.model.transform.linear:
            return ("UMAP and t-SNE place each z at its nearest data latents, so they draw z in a hole beside the "
                    "data; PCA shows how far off the data they land.")
        return "Drawn through the same projection as the data's latents."

    def _show_score(self) -> None:
        score, m = self.score, self.model
        what = self.source_box.currentText()
        self.summary.setText(f"holes {score.score:.2f}")
        self.title.setText(f"{what}: {score.score:.0%} of {len(self.z):,} z fall in a hole (nearest "
                           f"{m.data.describe()} latent of their class farther than its own {score.k}th neighbour)")
        names = m.class_names if len(score.per_class) > 1 else ("all",)
        rows = [("all classes", score.score, len(self.z))] if len(score.per_class) > 1 else []
        counts = np.bincount(self.z_labels, minlength=len(score.per_class))
        rows += [(names[c] if c < len(names) else str(c), v, int(counts[c])) for c, v in enumerate(score.per_class)]
        self.table.setRowCount(len(rows))
        for r, (name, value, n) in enumerate(rows):
            for c, text in enumerate((name, "—" if np.isnan(value) else f"{value:.2f}", f"{n:,}")):
                item = QTableWidgetItem(text)
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                self.table.setItem(r, c, item)
        self.table.setEnabled(True)

    def _mark_out_of_date(self, doing: str) -> None:
        if self.score is not None:
            self.title.setText(f"out of date: {doing}")
        else:
            self.title.setText(doing)
        self.table.setEnabled(False)       # greyed: the numbers are of the previous model, source or data
        self.summary.setText(doing)
        self.draw()

    def _clear(self, text: str) -> None:
        self.z = self.xy = self.score = None
        self.scatter.set_overlay(None)
        self.table.setRowCount(0)
        self.summary.setText(text)
        self.note.setText("")
        self.progress.hide()
