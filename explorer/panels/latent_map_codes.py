"""The latent map of a VQ-VAE: its codebook, one point per code vector (core.latent.code_map).

A VQ-VAE's image is a grid of code indices, so there is no latent per image to place: the map projects the code
vectors themselves (PCA at once, UMAP / t-SNE on the panel's worker, as the continuous map does) and shows how the
chosen split uses each code: a point's size grows with the cells that use it, its colour is the class whose images use
it most (or its use, or how much of it that one class holds), dead codes are red crosses. Clicking a code shows what a
grid of only that code decodes to, its use per class, its nearest codes, and the images with the most cells of it
(those cells tinted); clicking one of them picks it for the other tabs (the Codes tab opens it in the code editor).
An image picked anywhere (here, the Codes tab, the Dataset tab) has the codes it uses ringed in orange.

`CodebookMap` owns its scatter, side view and "colour codes by" box; the latent map panel places them and calls
`load` (a VQ-VAE shown) and `project` (the map method or its settings changed).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QLabel, QProgressBar, QSplitter, QVBoxLayout, QWidget

from core.latent.code_map import CodebookUse, codebook_use
from core.latent.map_data import ALL_SPLITS
from core.latent.projection import ProjectionSettings, cached_projection, model_key, pca_2d_with_variance
from core.models.protocol import is_vqvae
from core.training.checkpoint import LoadedModel
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.codebook_scatter import DEAD_COLOUR, CodebookScatter
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.latent_scatter import class_colour
from explorer.widgets.latent_widgets import PixelView, inspector_bars
from explorer.widgets.panel_controls import combo_box

COLOUR_CODES_BY = ("class using it most", "cells using it", "top class's share")
SIZE_MIN, SIZE_MAX = 5.0, 24.0      # a point's diameter (px) for the least and the most used code
TINT = np.array([214, 39, 40], np.float32)   # the cells of the clicked code, over the images that use it
HINT = "Click a code: what it decodes to, and the images that use it."


def _use_job(model, images, labels, num_classes: int, split: str, progress=None, should_stop=None):
    return codebook_use(model, images, labels, num_classes, split=split, progress=progress, should_stop=should_stop)


def _project_job(loaded, vectors: np.ndarray, method: str, settings: ProjectionSettings, progress=None,
                 should_stop=None):
    """Runs on the worker thread (umap is imported there, never on the GUI thread)."""
    return cached_projection(vectors, method, model=model_key(loaded), split="codebook", seed=0, settings=settings,
                             progress=progress, should_stop=should_stop)


def tinted(images: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """uint8 (N, C, H, W) images as RGB (N, H, W, 3) with the cells where `cells` (N, g, g) is True tinted red (a cell
    covers H/g pixels; exact when the image size is a multiple of the grid, as for the presets)."""
    rgb = np.repeat(images, 3, axis=1) if images.shape[1] == 1 else images[:, :3]
    rgb = rgb.transpose(0, 2, 3, 1).astype(np.float32)
    h, w, g = rgb.shape[1], rgb.shape[2], cells.shape[1]
    rows, cols = (np.arange(h) * g) // h, (np.arange(w) * g) // w
    mask = cells[:, rows][:, :, cols][..., None]
    return np.where(mask, 0.45 * rgb + 0.55 * TINT, rgb).round().astype(np.uint8)


class CodeInspector(QObject):
    """The side view of one code: its look, its use per class, what it is, and the images using it most."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.look = PixelView(minimum=96)
        self.info = QLabel(HINT)
        self.info.setWordWrap(True)
        self.bars, self.bar_item = inspector_bars("class", max_height=130)
        self.bars.setLabel("left", "cells")
        self.images_title = QLabel("images using the code most")
        self.images = ImageGrid()
        self.images.setMinimumHeight(80)
        self.widget = QWidget()
        lay = QVBoxLayout(self.widget)
        for w in (self.look, self.info, self.bars, self.images_title):
            lay.addWidget(w)
        lay.addWidget(self.images, 1)

    def show(self, use: CodebookUse, code: int, look: np.ndarray, names: tuple[str, ...],
             pictures: np.ndarray, captions: list[str]) -> None:
        cells = use.cells
        total, n = int(cells.sum()), len(use.codes)
        self.look.set_image(look, f"a grid of only code {code}")
        self.bar_item.setOpts(x=np.arange(use.by_class.shape[1]), height=use.by_class[code].astype(float), width=0.8)
        self.bars.getAxis("bottom").setTicks([list(enumerate(names))] if names else None)
        near, dist = use.nearest_codes(code, 3)
        nearest = ", ".join(f"{k} ({d:.2f})" for k, d in zip(near.tolist(), dist.tolist(), strict=True))
        if cells[code] == 0:
            self.info.setText(f"code {code} is dead: no cell of the {use.split} split's {n:,} images uses it. "
                              f"Nearest codes: {nearest}.")
        else:
            top = int(use.top_class()[code])
            self.info.setText(
                f"code {code}: {int(cells[code]):,} of the {total:,} cells of the {use.split} split "
                f"({cells[code] / max(1, total):.1%}), in {int((use.images_with(code) > 0).sum()):,} of {n:,} images; "
                f"used most by class {names[top] if top < len(names) else top} "
                f"({use.class_share()[code]:.0%} of its cells). Nearest codes (vector distance): {nearest}.")
        self.images.set_images(pictures, columns=4, captions=captions)
        self.images_title.setText(f"images with the most cells of code {code} (tinted; click one to pick it)"
                                  if len(pictures) else f"no image of the {use.split} split uses code {code}")

    def clear(self) -> None:
        self.look.set_image(None, "")
        self.info.setText(HINT)
        self.bar_item.setOpts(x=[], height=[], width=0.8)
        self.images.clear()
        self.images_title.setText("images using the code most")


class CodebookMap(QObject):
    """A VQ-VAE's codebook on the latent map (see the module docstring)."""

    def __init__(self, state: AppState, tasks: PanelTasks, progress: QProgressBar, status: Callable[[str], None],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state, self.tasks, self.progress, self.status = state, tasks, progress, status
        self.scatter = CodebookScatter()
        self.scatter.codeClicked.connect(self.show_code)
        self.colour_box = combo_box(COLOUR_CODES_BY, lambda _: self.draw())
        self.inspector = CodeInspector(self)
        self.inspector.images.clicked.connect(self._on_image_clicked)
        state.imageSelected.connect(self.ring_image_codes)
        self.page = QSplitter()
        self.page.addWidget(self.scatter)
        self.page.addWidget(self.inspector.widget)
        self.page.setStretchFactor(0, 3)
        self.page.setStretchFactor(1, 1)
        self.page.setSizes([700, 320])
        self.active = False
        self.clear()

    @staticmethod
    def shows(vae: LoadedModel | None) -> bool:
        """True when `vae` is a VQ-VAE (its map is its codebook)."""
        return vae is not None and is_vqvae(vae.model)

    def clear(self) -> None:
        self.loaded: LoadedModel | None = None
        self.use: CodebookUse | None = None
        self.xy: np.ndarray | None = None
        self.method_shown = ""            # "pca" / "umap" / "tsne"
        self.selected: int | None = None
        self.shown_rows = np.zeros(0, dtype=np.int64)   # the inspector's images, as rows of the counted split
        self.split_images: list[np.ndarray] = []
        self.origins: tuple[np.ndarray, np.ndarray] = (np.zeros(0, str), np.zeros(0, np.int64))
        self.scatter.clear_codes()
        self.inspector.clear()

    # ---- loading ----------------------------------------------------------------------------------------------------
    def load(self, split: str, method: str, settings: ProjectionSettings) -> None:
        """Count how the shown VQ-VAE's codes are used in `split` ("all": every split) on the worker, then map them."""
        self.tasks.cancel_all()
        self.clear()
        self.active = True
        vae, dataset = self.state.vae, self.state.dataset
        if dataset is None:
            self.status("Load a dataset to see how the VQ-VAE's codes are used (the map shows its codebook).")
            return
        if (dataset.meta.channels, dataset.meta.image_size) != (vae.meta.channels, vae.meta.image_size):
            self.status(f"The VQ-VAE was trained on {vae.meta.channels}x{vae.meta.image_size}px images, the dataset "
                        f"has {dataset.meta.channels}x{dataset.meta.image_size}px: load a matching dataset.")
            return
        parts = [(name, dataset.split(name)) for name in (ALL_SPLITS if split == "all" else (split,))]
        parts = [(name, s) for name, s in parts if len(s)]
        if not parts:
            self.status(f"the {split} split has no images; choose another split")
            return
        import torch

        self.loaded = vae
        self.split_images = [s.images.cpu().numpy() for _, s in parts]
        self.origins = (np.concatenate([[name] * len(s) for name, s in parts]),
                        np.concatenate([np.arange(len(s)) for _, s in parts]))
        images = torch.cat([s.images for _, s in parts]) if len(parts) > 1 else parts[0][1].images
        labels = torch.cat([s.labels for _, s in parts]) if len(parts) > 1 else parts[0][1].labels
        what = "all splits" if split == "all" else split
        self.status(f"counting the codes of the {len(images):,} {what} images…")
        self._wanted = (method, settings)
        self.tasks.start("encode", _use_job, vae.model, images, labels, len(vae.meta.class_names), what,
                         on_result=self._on_counted, progress=self.progress, progress_format="encode %p%{eta}",
                         status=self.status, on_finished=self._done)

    def _on_counted(self, use: CodebookUse | None) -> None:
        if use is None or self.loaded is None:
            return
        self.use = use
        self.project(*self._wanted)      # the map the user chose last, also while the codes were counted

    def project(self, method: str, settings: ProjectionSettings) -> None:
        """PCA at once; UMAP / t-SNE on the worker (PCA stays shown, named as PCA, until it is ready). Asked for while
        the codes are still counted, the projection waits for them (the newest choice wins)."""
        self._wanted = (method, settings)
        if self.use is None:
            return
        self.tasks.cancel("projection")
        if self.xy is None or method == "pca":
            xy, explained = pca_2d_with_variance(self.use.vectors)
            self._set_xy(xy, "pca", (f"PC1 ({explained[0]:.1%} of variance)", f"PC2 ({explained[1]:.1%} of variance)"))
        if method == "pca":
            return
        self.tasks.start("projection", _project_job, self.loaded, self.use.vectors, method, settings,
                         on_result=lambda xy: xy is not None and self._set_xy(xy, method, None),
                         progress=self.progress, progress_format=f"{method} %p%{{eta}}", status=self.status,
                         on_finished=self._done)
        self.status(f"{self._name(self.method_shown)} shown; computing {self._name(method)} of the codebook in the "
                    "background…")

    def _set_xy(self, xy: np.ndarray, method: str, axes: tuple[str, str] | None) -> None:
        self.xy = np.asarray(xy, dtype=np.float32)
        self.method_shown = method
        self.scatter.set_axes(*(axes or (None, None)))
        self.draw()
        self.status(self.describe())

    def _done(self, _stopped: bool) -> None:
        if not self.tasks.busy():
            self.progress.setFormat(f"{self._name(self.method_shown)} shown" if self.xy is not None else "idle")

    # ---- drawing ----------------------------------------------------------------------------------------------------
    @staticmethod
    def _name(method: str) -> str:
        return {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}.get(method, method)

    def describe(self) -> str:
        """What the map shows, for the status line."""
        use = self.use
        k, dead = len(use.vectors), len(use.dead)
        return (f"{self._name(self.method_shown)} map of the {k} code vectors of the VQ-VAE's codebook (a point is a "
                f"code, not an image), sized by the cells of the {use.split} split's {len(use.codes):,} images using "
                f"it: {k - dead} used, {dead} dead (red crosses), perplexity {use.perplexity():.1f}.")

    def colours(self) -> tuple[list, list[tuple[str, object]]]:
        """Each code's brush and the legend's rows, by the "colour codes by" choice."""
        use, mode = self.use, self.colour_box.currentText()
        names = tuple(self.loaded.meta.class_names)
        if mode == COLOUR_CODES_BY[0]:
            top, share = use.top_class(), use.class_share()
            n = max(len(names), int(top.max()) + 1)
            brushes = []
            for t, s in zip(top.tolist(), share.tolist(), strict=True):
                c = class_colour(max(t, 0), n)
                c.setAlpha(int(90 + 165 * s))     # a code one class owns is opaque, a shared one faint
                brushes.append(pg.mkBrush(c))
            shown = sorted(set(top[top >= 0].tolist()))
            return brushes, [(f"class {names[t] if t < len(names) else t}", pg.mkBrush(class_colour(t, n)))
                             for t in shown]
        by_cells = mode == COLOUR_CODES_BY[1]
        raw = use.cells.astype(np.float64) if by_cells else use.class_share()
        values = np.log1p(raw) if by_cells else raw          # cells span decades: a log scale
        lo, hi = float(values.min()), float(values.max())
        cmap = pg.colormap.get("viridis")
        colours = cmap.map((values - lo) / max(hi - lo, 1e-9), mode="qcolor")
        ends = [f"{v:,.0f} cells" for v in (raw.min(), raw.max())] if by_cells else \
            [f"top class holds {v:.0%}" for v in (raw.min(), raw.max())]
        return [pg.mkBrush(c) for c in colours], [(ends[0], pg.mkBrush(cmap.map(0.0, mode="qcolor"))),
                                                  (ends[1], pg.mkBrush(cmap.map(1.0, mode="qcolor")))]

    def draw(self) -> None:
        if self.use is None or self.xy is None:
            return
        use = self.use
        cells = use.cells.astype(np.float64)
        sizes = SIZE_MIN + (SIZE_MAX - SIZE_MIN) * np.sqrt(cells / max(1.0, cells.max()))
        brushes, legend = self.colours()
        dead = cells == 0
        self.scatter.set_codes(self.xy, brushes, sizes, dead)
        if dead.any():
            legend.append((f"dead code ({int(dead.sum())})", pg.mkBrush(DEAD_COLOUR)))
        self.scatter.set_legend(legend)
        # short: a plot's title sets its minimum width (the map shares a narrow window with the side view)
        self.scatter.set_title(f"{self._name(self.method_shown)} of the {len(cells)} code vectors (codebook)")
        self.scatter.mark(self.selected)

    # ---- one code ---------------------------------------------------------------------------------------------------
    def image_rows(self, rows: np.ndarray) -> np.ndarray:
        """uint8 (n, C, H, W) images of rows of the counted split(s)."""
        names, index = self.origins
        order = [name for name in dict.fromkeys(names.tolist())]
        return np.stack([self.split_images[order.index(names[r])][index[r]] for r in rows]) if len(rows) else \
            np.zeros((0, *self.split_images[0].shape[1:]), np.uint8)

    def show_code(self, code: int) -> None:
        """Inspect code `code`: its look (a grid of only that code, decoded here: one small decode) and its use."""
        use = self.use
        if use is None or not 0 <= code < len(use.vectors):
            return
        import torch

        self.selected = int(code)
        self.scatter.mark(self.selected)
        model = self.loaded.model
        with torch.no_grad():
            grid = torch.full((1, int(model.grid), int(model.grid)), int(code), dtype=torch.long)
            look = (model.decode_codes(grid)[0].float().cpu().numpy().transpose(1, 2, 0) * 255).round()
        rows = use.images_using(code, 8)
        self.shown_rows = rows
        g = int(model.grid)
        cells = use.codes[rows].reshape(len(rows), g, g) == code
        names = tuple(self.loaded.meta.class_names)
        per_image = use.images_with(code)
        captions = [f"{names[int(use.labels[r])]} · {int(per_image[r])} cells" for r in rows]
        self.inspector.show(use, self.selected, look.astype(np.uint8), names, tinted(self.image_rows(rows), cells),
                            captions)

    def ring_image_codes(self, split: str, index: int) -> None:
        """Ring the codes that image `index` of `split` uses (when it is among the counted images)."""
        if self.use is None or self.xy is None:
            return
        names, at = self.origins
        row = np.flatnonzero((names == split) & (at == int(index)))
        if not len(row):
            self.scatter.ring_codes(None)
            return
        codes = np.unique(self.use.codes[int(row[0])])
        self.scatter.ring_codes(codes)
        label = int(self.use.labels[int(row[0])])
        names_ = self.loaded.meta.class_names
        self.status(f"{split} #{index} (class {names_[label] if label < len(names_) else label}) uses "
                    f"{len(codes)} codes, ringed in orange. " + self.describe())

    def _on_image_clicked(self, i: int) -> None:
        """Pick the image for the other tabs (the Codes tab shows its code grid)."""
        if 0 <= i < len(self.shown_rows):
            names, index = self.origins
            row = int(self.shown_rows[i])
            self.state.imageSelected.emit(str(names[row]), int(index[row]))
