"""The bar above the panels that says what the current panel shows, and lets the user pin another model for it.

For the panel on screen: one combo per model kind it uses ("VAE", "diffusion"), whose first item follows the models
list's selection ("shown: NAME") and whose other items pin one model of the list for this panel alone; then the
dataset. Switching tabs shows that tab's own choices.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from explorer.panel_view import PanelView
from explorer.state import slot_of
from explorer.widgets.elided_label import ElidedLabel

KINDS = (("vae", "VAE"), ("diffusion", "diffusion"))


class PanelHeader(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.view: PanelView | None = None
        self.uses: tuple[str, ...] = ()
        self._filling = False
        lay = QHBoxLayout(self)
        lay.setContentsMargins(6, 2, 6, 2)
        self.combos: dict[str, QComboBox] = {}
        self.labels: dict[str, QLabel] = {}
        for kind, title in KINDS:
            label = QLabel(f"{title}:")
            combo = QComboBox()
            combo.setMinimumContentsLength(20)   # two of them fit a 1024-px window; the full name is in the list
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setToolTip(f"The {title} this panel shows: the one selected in the models list, or a model pinned "
                             "for this panel alone")
            combo.currentIndexChanged.connect(lambda _i, k=kind: self._on_choice(k))
            lay.addWidget(label)
            lay.addWidget(combo)
            self.combos[kind], self.labels[kind] = combo, label
        self.dataset_label = ElidedLabel()
        lay.addWidget(self.dataset_label)
        lay.addStretch(1)
        self.show_view(None, ())

    def show_view(self, view: PanelView | None, uses: tuple[str, ...]) -> None:
        """Show the choices of `view` (the current tab's), for the model kinds it uses."""
        if self.view is not None:
            for sig in (self.view.state.modelsChanged, self.view.state.datasetChanged, self.view.pinChanged,
                        self.view.state.loadingChanged):
                sig.disconnect(self.refresh)
        self.view, self.uses = view, uses
        if view is not None:
            for sig in (view.state.modelsChanged, view.state.datasetChanged, view.pinChanged,
                        view.state.loadingChanged):
                sig.connect(self.refresh)
        self.setVisible(view is not None)
        self.refresh()

    def refresh(self) -> None:
        view = self.view
        self._filling = True
        try:
            for kind, _ in KINDS:
                combo, used = self.combos[kind], view is not None and kind in self.uses
                combo.setVisible(used)
                self.labels[kind].setVisible(used)
                if not used:
                    continue
                combo.clear()
                shown = view.state.shown.get(kind)
                loading = view.state.loading.get(kind, "")   # a bundled model a panel asked for (explorer/bundled.py)
                combo.addItem(f"shown: {shown.describe()}" if shown else f"shown: {loading or 'none'}", None)
                for entry in view.state.models:
                    if slot_of(entry.kind) == kind:    # a VQ-VAE can be pinned where a VAE can
                        combo.addItem(f"pinned: {entry.describe()}", entry.id)
                pinned = view.pinned[kind]
                combo.setCurrentIndex(combo.findData(pinned.id) if pinned is not None else 0)
            ds = view.dataset if view is not None else None
            self.dataset_label.setText(f"dataset: {ds.meta.name} ({len(ds.train)} train)" if ds is not None
                                       else "dataset: none")
        finally:
            self._filling = False

    def _on_choice(self, kind: str) -> None:
        if self._filling or self.view is None:
            return
        ident = self.combos[kind].currentData()
        entry = next((e for e in self.view.state.models if e.id == ident), None) if ident is not None else None
        self.view.pin(kind, entry)
