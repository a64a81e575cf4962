"""The latent map's scatter: one pyqtgraph item per class (legend toggles them), colours by class or by a value,
a shade over the space far from the data, markers for the selection and the decoded position, and a thumbnail that
follows the cursor. It knows nothing of models: the panel tells it what to show and hears where the user points.

At dataset scale (70,000-100,000 points) the view switches to a density image while more than `DENSITY_ABOVE` points
are in view: bench/bench_latent_scale.py measured a pan/zoom frame (move, handlers, one repaint) with every point
drawn by pyqtgraph's ScatterPlotItem at 26 ms for 70,000 points and 35 ms for 100,000 on this 2-core machine (over
the 33 ms budget), 15-18 ms for 13,000-18,000; with the density image (each screen cell the mean colour of its
points, opacity by count; numpy bincounts, redrawn when the view moves) 16-17 ms whatever N is. Zoomed in, the
points come back. No OpenGL: PyOpenGL is not a dependency
and the offscreen and remote-desktop cases have none.

Left-drag sweeps (decodes follow the mouse), or draws a lasso / rectangle when that tool is chosen (Shift+drag is
always the lasso); the selection and the points a search found are drawn as rings (a selection of more than
`RINGS_AT_MOST` points over the density image: as bright cells among dimmed ones).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QImage, QPalette, QPixmap
from PySide6.QtWidgets import QLabel, QWidget

from explorer.widgets.live_plot import FollowsPalette, style_legend, style_plot

# Ten distinct colours (matplotlib's tab10), then hues for datasets with more classes.
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
HOVER_PX = 7          # a point is "under the cursor" within this many screen pixels
COLOUR_STEPS = 32
DENSITY_ABOVE = 20_000   # more points in view than this: a density image instead of the points
DENSITY_CELL_PX = 2      # screen pixels per density-image cell
# Over the density image, a selection of more points than this is drawn in the image itself (the cells without a
# selected point dimmed) instead of as rings: rings are scatter points, as slow to draw as the points they replace.
RINGS_AT_MOST = 2_000
DIMMED = 0.18            # opacity factor of the unselected cells in that case
TOOLS = ("decode", "lasso", "rectangle")
OVERLAY_CELL_PX = 6      # screen pixels per cell of the overlay's density
OVERLAY_ALPHA = 210      # the opacity of its densest cell


def class_colour(i: int, n: int):
    return pg.mkColor(TAB10[i]) if n <= len(TAB10) else pg.intColor(i, hues=n)


def _set_rings(marker: pg.ScatterPlotItem, xy: np.ndarray | None, rows: np.ndarray | None) -> None:
    """Rings around points `rows` of `xy` (None or empty: none)."""
    if rows is None or xy is None or len(rows) == 0:
        marker.setData([], [])
    else:
        pts = xy[np.asarray(rows, dtype=np.int64)]
        marker.setData(pts[:, 0], pts[:, 1])


class HoverThumbnail(QLabel):
    """The map's thumbnail "tooltip": a child label of the map that follows the cursor."""

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.setStyleSheet("background: palette(base); border: 1px solid #888; padding: 2px;")
        self.hide()

    def show_at(self, image: QImage, x: int, y: int) -> None:
        """`image` scaled up to ~64 px high, beside widget position (x, y), kept inside the parent."""
        scale = max(1, 64 // max(1, image.height()))
        self.setPixmap(QPixmap.fromImage(image).scaled(image.width() * scale, image.height() * scale))
        self.adjustSize()
        parent = self.parentWidget()
        self.move(min(x + 14, max(0, parent.width() - self.width())),
                  min(y + 14, max(0, parent.height() - self.height())))
        self.show()
        self.raise_()


class _MapViewBox(pg.ViewBox):
    """Left-drag sweeps (reported in data coordinates) or draws a selection outline instead of panning; other buttons
    keep pyqtgraph's gestures."""

    sigSweep = Signal(object, bool)   # (QPointF in view coords, finished)
    sigOutlined = Signal(object)      # (M, 2) float closed outline in view coords: a finished lasso or rectangle

    def __init__(self) -> None:
        super().__init__()
        self.tool = "decode"
        self._outline: list[tuple[float, float]] = []
        self._outline_tool = "decode"
        self.outline_item = pg.PlotCurveItem(pen=pg.mkPen(40, 40, 40, width=1.5, style=Qt.PenStyle.DashLine))
        self.outline_item.setZValue(11)
        self.addItem(self.outline_item, ignoreBounds=True)

    def show_outline(self, outline: np.ndarray | None) -> None:
        """Draw a selection outline (closed, dashed; None: none): the lasso being drawn, or one to show."""
        if outline is None or len(outline) == 0:
            self.outline_item.setData([], [])
            return
        closed = np.vstack([outline, outline[:1]])
        self.outline_item.setData(closed[:, 0], closed[:, 1])

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() != Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        p = self.mapSceneToView(ev.scenePos())
        if ev.isStart():
            shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self._outline_tool = "lasso" if shift else self.tool
            start = self.mapSceneToView(ev.buttonDownScenePos())
            self._outline = [(start.x(), start.y())]
        if self._outline_tool == "decode":
            self.sigSweep.emit(p, bool(ev.isFinish()))
            return
        if self._outline_tool == "lasso":
            self._outline.append((p.x(), p.y()))
            outline = np.array(self._outline, dtype=np.float64)
        else:
            (x0, y0), (x1, y1) = self._outline[0], (p.x(), p.y())
            outline = np.array([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], dtype=np.float64)
        if not ev.isFinish():
            self.show_outline(outline)
            return
        self.show_outline(None)
        if len(outline) >= 3:
            self.sigOutlined.emit(outline)


class DensityImage(pg.ImageItem):
    """Points drawn as an image: each screen cell the mean colour of its points, opacity by count (log scale: a dense
    cluster does not hide the rest); `lit` (a mask over the points) keeps its cells bright and dims the others."""

    def draw(self, xy: np.ndarray, colours: np.ndarray, x_range: tuple[float, float],
             y_range: tuple[float, float], cells: tuple[int, int], lit: np.ndarray | None = None) -> None:
        w, h = cells
        ix = np.clip(((xy[:, 0] - x_range[0]) / max(x_range[1] - x_range[0], 1e-12) * w).astype(np.int64), 0, w - 1)
        iy = np.clip(((xy[:, 1] - y_range[0]) / max(y_range[1] - y_range[0], 1e-12) * h).astype(np.int64), 0, h - 1)
        cell = ix * h + iy
        count = np.bincount(cell, minlength=w * h).astype(np.float32)
        rgba = np.zeros((w * h, 4), np.float32)
        filled = count > 0
        for ch in range(3):
            rgba[filled, ch] = np.bincount(cell, weights=colours[:, ch], minlength=w * h)[filled] / count[filled]
        # one point is clearly visible; crowded cells are solid
        rgba[:, 3] = np.where(filled, 0.55 + 0.45 * np.log1p(count) / np.log1p(max(count.max(), 2.0)), 0.0)
        if lit is not None:
            bright = np.zeros(w * h, bool)
            bright[cell[lit]] = True
            rgba[~bright, 3] *= DIMMED
        self.setImage((rgba.reshape(w, h, 4) * 255).astype(np.uint8), autoLevels=False, levels=(0, 255))
        self.setRect(float(x_range[0]), float(y_range[0]), float(x_range[1] - x_range[0]),
                     float(y_range[1] - y_range[0]))


class OverlayDensity(pg.ImageItem):
    """A second set of points (a sampler's z on the map) as a smooth density of one colour over the view: a 2-D
    histogram of `OVERLAY_CELL_PX` cells, blurred by one cell, opacity rising with the density."""

    def __init__(self) -> None:
        super().__init__()
        self.xy: np.ndarray | None = None
        self.rgb = (0, 0, 0)

    def draw(self, x_range: tuple[float, float], y_range: tuple[float, float], size: tuple[float, float]) -> None:
        if self.xy is None or len(self.xy) == 0:
            self.clear()
            return
        from scipy.ndimage import gaussian_filter

        w = max(1, int(size[0] // OVERLAY_CELL_PX))
        h = max(1, int(size[1] // OVERLAY_CELL_PX))
        count, _, _ = np.histogram2d(self.xy[:, 0], self.xy[:, 1], bins=(w, h), range=(x_range, y_range))
        density = gaussian_filter(count, 1.0)
        top = max(float(density.max()), 1e-12)
        rgba = np.zeros((w, h, 4), np.uint8)
        rgba[..., :3] = self.rgb
        rgba[..., 3] = (np.sqrt(density / top) * OVERLAY_ALPHA).astype(np.uint8)
        self.setImage(rgba, autoLevels=False, levels=(0, 255))
        self.setRect(float(x_range[0]), float(y_range[0]), float(x_range[1] - x_range[0]),
                     float(y_range[1] - y_range[0]))


class LatentScatter(FollowsPalette, pg.PlotWidget):
    clickedAt = Signal(object)          # QPointF in data coordinates: a left click on the map (not on the legend)
    sweptTo = Signal(object, bool)      # (QPointF in data coordinates, drag finished)
    hovered = Signal(object)            # QPointF in data coordinates, or None when the cursor left the map
    outlined = Signal(object)           # (M, 2) closed outline in data coordinates: a finished lasso / rectangle

    def __init__(self, parent: QWidget | None = None) -> None:
        self.view = _MapViewBox()
        super().__init__(parent, viewBox=self.view)
        self.view.setAspectLocked(False)
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.legend = self.addLegend(offset=(5, 5))
        self.xy: np.ndarray | None = None
        self.title_text = ""
        self.items: list[pg.ScatterPlotItem] = []
        self.class_index: list[np.ndarray] = []
        self._tree = None
        self._shade = pg.ImageItem()
        self._shade.setZValue(-10)
        self.addItem(self._shade, ignoreBounds=True)     # auto-range fits the points, not the wide shade
        self._marker = pg.ScatterPlotItem(size=16, symbol="o", pen=pg.mkPen("k", width=2), brush=None)
        self._query_marker = pg.ScatterPlotItem(size=16, symbol="+", pen=pg.mkPen("k", width=2), brush=pg.mkBrush("k"))
        # the selection: thin black rings; the points a search found: thick orange rings over everything
        self._selection_marker = pg.ScatterPlotItem(size=9, symbol="o", pen=pg.mkPen(0, 0, 0, 200, width=1.2),
                                                    brush=None)
        self._found_marker = pg.ScatterPlotItem(size=13, symbol="o", pen=pg.mkPen(255, 120, 0, width=2.5), brush=None)
        for z, marker in ((8, self._selection_marker), (9, self._found_marker), (10, self._marker),
                          (10, self._query_marker)):
            marker.setZValue(z)
            self.addItem(marker, ignoreBounds=True)
        # the density image that replaces the points while many are in view
        self._density = DensityImage()
        self._density.setZValue(-5)
        self.addItem(self._density, ignoreBounds=True)
        self._overlay = OverlayDensity()      # a second density layer (the prior overlay), over the data's
        self._overlay.setZValue(-3)
        self.addItem(self._overlay, ignoreBounds=True)
        self.density_shown = False
        self._colours = np.zeros((0, 3), np.float32)   # (N, 3) RGB of each point as drawn, for the density image
        self._selection = np.zeros(0, np.int64)        # rows of the selection (rings, or highlighted density cells)
        self._value_brushes = False                     # per-point brushes (colour by a value) are set
        self.view.sigRangeChanged.connect(lambda *_: self._update_level_of_detail())
        self.view.sigResized.connect(lambda *_: self._update_level_of_detail())
        self.view.sigSweep.connect(self.sweptTo)
        self.view.sigOutlined.connect(self.outlined)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.hover_label = HoverThumbnail(self)
        self._ready = True
        self.apply_palette()

    def apply_palette(self) -> None:
        """The canvas, axes, title, legend and the rings / cross / outline in the look's colours (the class colours
        and the shade read on both)."""
        fg = style_plot(self, self.title_text or None)
        style_legend(self, self.legend, fg)
        self._marker.setPen(pg.mkPen(fg, width=2))
        self._query_marker.setPen(pg.mkPen(fg, width=2))
        self._query_marker.setBrush(pg.mkBrush(fg))
        self._selection_marker.setPen(pg.mkPen(fg.red(), fg.green(), fg.blue(), 200, width=1.2))
        self.view.outline_item.setPen(pg.mkPen(fg, width=1.5, style=Qt.PenStyle.DashLine))

    # ---- content ----------------------------------------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        """The map's title: which projection of which latents is shown."""
        self.title_text = text
        self.setTitle(text or None, color=self.palette().color(QPalette.ColorRole.Text).name())

    def clear_points(self) -> None:
        for item in self.items:
            self.removeItem(item)
        self.items, self.class_index = [], []
        self.xy, self._tree = None, None
        self.legend.clear()
        for marker in (self._marker, self._query_marker, self._selection_marker, self._found_marker,
                       self.view.outline_item):
            marker.setData([], [])
        self._shade.clear()
        self._density.clear()
        self._overlay.xy = None
        self._overlay.clear()
        self.density_shown = False
        self._colours = np.zeros((0, 3), np.float32)
        self._selection = np.zeros(0, np.int64)
        self.hover_label.hide()

    def set_points(self, xy: np.ndarray, labels: np.ndarray, names: tuple[str, ...] | list[str], tree) -> None:
        """Show `xy` (N, 2) coloured by `labels`; `tree` (a scipy cKDTree over xy) finds the point under the cursor.
        Classes the user had hidden in the legend stay hidden."""
        visible = {i: item.isVisible() for i, item in enumerate(self.items)}
        self.clear_points()
        self.xy = np.asarray(xy, dtype=np.float32)
        self._tree = tree
        n_classes = max(len(names), int(labels.max()) + 1 if len(labels) else 0)
        for c in range(n_classes):
            idx = np.flatnonzero(labels == c)
            name = names[c] if c < len(names) else str(c)
            item = pg.ScatterPlotItem(x=self.xy[idx, 0], y=self.xy[idx, 1], size=7, pen=None,
                                      brush=pg.mkBrush(class_colour(c, n_classes)), name=name)
            item.setVisible(visible.get(c, True))
            item.visibleChanged.connect(self._update_level_of_detail)   # a legend toggle redraws the density
            self.addItem(item)
            self.items.append(item)
            self.class_index.append(idx)
        self._value_brushes = False       # the items' own brush is their class colour
        self._colours = np.zeros((len(self.xy), 3), np.float32)
        for c, idx in enumerate(self.class_index):
            self._colours[idx] = pg.mkColor(class_colour(c, n_classes)).getRgbF()[:3]
        self.view.autoRange(padding=0.05)
        self._update_level_of_detail()

    def set_axes(self, x_label: str | None, y_label: str | None = None) -> None:
        """Show the axes with these labels (PCA's variance, a 2-D latent's own axes) or hide them (None: UMAP and
        t-SNE coordinates mean nothing)."""
        for side, label in (("bottom", x_label), ("left", y_label)):
            if x_label is None:
                self.hideAxis(side)
            else:
                self.showAxis(side)
                self.setLabel(side, label or "")          # in the axis's text colour (apply_palette)

    def set_colour_values(self, values: np.ndarray | None) -> None:
        """Colour by class (None) or by a value per point (viridis, 2nd to 98th percentile)."""
        n = len(self.items)
        if values is None:
            if not self._value_brushes:     # the items are drawn in their class colours already (set_points)
                return
            self._value_brushes = False
            # a list, not one brush: a single brush would not replace per-point brushes set by another mode
            for c, (item, idx) in enumerate(zip(self.items, self.class_index, strict=True)):
                colour = class_colour(c, n)
                item.setBrush([pg.mkBrush(colour)] * len(idx))
                self._colours[idx] = pg.mkColor(colour).getRgbF()[:3]
            self._update_level_of_detail(force=True)
            return
        # Shared brushes from a colour map: pyqtgraph caches one symbol per brush, so this stays fast where a
        # distinct brush per point would not.
        lo, hi = np.percentile(values, [2, 98])
        top = COLOUR_STEPS - 1
        bins = np.clip(((values - lo) / max(hi - lo, 1e-12) * top).round().astype(int), 0, top)
        lut = pg.colormap.get("viridis").getLookupTable(nPts=COLOUR_STEPS, mode="qcolor")
        # per-point brushes cost pyqtgraph ~5 us a point (0.35 s for 70,000): class colours skip them (above)
        self._value_brushes = True
        brushes = [pg.mkBrush(q) for q in lut]
        for item, idx in zip(self.items, self.class_index, strict=True):
            item.setBrush([brushes[b] for b in bins[idx]])
        rgb = np.array([q.getRgbF()[:3] for q in lut], np.float32)
        self._colours = rgb[bins]
        self._update_level_of_detail(force=True)

    def set_shade(self, rgba: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float],
                  visible: bool) -> None:
        """An (H, W, 4) uint8 image, row 0 at y_range[0], laid under the points."""
        # ImageItem's first axis is x: transpose the (row = y) image
        self._shade.setImage(rgba.transpose(1, 0, 2), autoLevels=False)
        self._shade.setRect(float(x_range[0]), float(y_range[0]), float(x_range[1] - x_range[0]),
                            float(y_range[1] - y_range[0]))
        self._shade.setVisible(visible)

    def set_overlay(self, xy: np.ndarray | None, colour: str = "#000000") -> None:
        """A second density layer in its own colour (where a sampler's z land), redrawn as the view moves (None:
        none)."""
        self._overlay.xy = None if xy is None else np.asarray(xy, dtype=np.float32)
        self._overlay.rgb = pg.mkColor(colour).getRgb()[:3]
        self._update_level_of_detail()

    def set_shade_visible(self, on: bool) -> None:
        self._shade.setVisible(on)

    def mark_point(self, i: int | None) -> None:
        """Ring the selected data point (None: no ring)."""
        if i is None or self.xy is None:
            self._marker.setData([], [])
        else:
            self._marker.setData([self.xy[i, 0]], [self.xy[i, 1]])

    def mark_query(self, p: np.ndarray | None) -> None:
        """Cross at a decoded position in empty space (None: no cross)."""
        if p is None:
            self._query_marker.setData([], [])
        else:
            self._query_marker.setData([p[0]], [p[1]])

    def mark_selection(self, rows: np.ndarray | None) -> None:
        """Ring the selected points (None or empty: no rings); a large selection over the density image is drawn in
        the image instead (`selection_in_image`)."""
        self._selection = np.zeros(0, np.int64) if rows is None or self.xy is None else \
            np.asarray(rows, dtype=np.int64)
        _set_rings(self._selection_marker, self.xy, None if self.selection_in_image() else self._selection)
        if self.density_shown:
            self._update_level_of_detail(force=True)

    def selection_in_image(self) -> bool:
        """True while the selection is shown by the density image (bright cells, the rest dimmed), not by rings."""
        return self.density_shown and len(self._selection) > RINGS_AT_MOST

    def mark_found(self, rows: np.ndarray | None) -> None:
        """Ring the points a search found, in orange (None or empty: none)."""
        _set_rings(self._found_marker, self.xy, rows)

    def ringed(self, which: str) -> int:
        """How many points carry the selection ("selection") or search ("found") rings."""
        marker = self._selection_marker if which == "selection" else self._found_marker
        return len(marker.data)

    # ---- level of detail --------------------------------------------------------------------------------------------
    def _update_level_of_detail(self, *_: object, force: bool = False) -> None:
        """Points while few are in view, the density image while many are (see the module docstring)."""
        if self.xy is None or not self.items:
            return
        (x0, x1), (y0, y1) = self.view.viewRange()
        x, y = self.xy[:, 0], self.xy[:, 1]
        in_view = (x >= x0) & (x <= x1) & (y >= y0) & (y <= y1) & self.visible_mask()
        dense = int(in_view.sum()) > DENSITY_ABOVE
        if dense != self.density_shown or force or dense:
            for item in self.items:
                # opacity, not visibility: the legend toggles visibility, and Qt skips painting transparent items
                item.setOpacity(0.0 if dense else 1.0)
            switched = dense != self.density_shown
            self.density_shown = dense
            if switched and len(self._selection) > RINGS_AT_MOST:   # rings <-> the image's highlight
                _set_rings(self._selection_marker, self.xy, None if self.selection_in_image() else self._selection)
        size = self.view.size()
        if dense:
            cells = (max(1, int(size.width() // DENSITY_CELL_PX)), max(1, int(size.height() // DENSITY_CELL_PX)))
            lit = None
            if self.selection_in_image():
                chosen = np.zeros(len(self.xy), bool)
                chosen[self._selection] = True
                lit = chosen[in_view]
            self._density.draw(self.xy[in_view], self._colours[in_view], (x0, x1), (y0, y1), cells, lit)
        else:
            self._density.clear()
        self._overlay.draw((x0, x1), (y0, y1), (size.width(), size.height()))

    # ---- pointing ---------------------------------------------------------------------------------------------------
    def set_tool(self, tool: str) -> None:
        """What a left-drag does: "decode" (sweep), "lasso" or "rectangle" (select)."""
        if tool not in TOOLS:
            raise ValueError(f"tool must be one of {TOOLS}, not {tool!r}")
        self.view.tool = tool

    def visible_mask(self) -> np.ndarray:
        mask = np.zeros(len(self.xy), bool) if self.xy is not None else np.zeros(0, bool)
        for item, idx in zip(self.items, self.class_index, strict=True):
            if item.isVisible():
                mask[idx] = True
        return mask

    def point_near(self, pos: QPointF) -> int | None:
        """The visible data point within HOVER_PX screen pixels of a view position, if any."""
        if self._tree is None or self.xy is None:
            return None
        k = min(16, len(self.xy))
        _, ids = self._tree.query([pos.x(), pos.y()], k=k)
        visible = self.visible_mask()
        target = self.view.mapViewToScene(pos)
        for i in np.atleast_1d(ids):
            if not visible[i]:
                continue
            p = self.view.mapViewToScene(QPointF(float(self.xy[i, 0]), float(self.xy[i, 1])))
            if (p - target).manhattanLength() <= HOVER_PX * 1.5:
                return int(i)
            break
        return None

    def show_hover(self, image: QImage, pos: QPointF) -> None:
        """Float `image` (scaled up to ~64 px high) beside the view position `pos`."""
        p = self.mapFromScene(self.view.mapViewToScene(pos))
        self.hover_label.show_at(image, p.x(), p.y())

    def hide_hover(self) -> None:
        self.hover_label.hide()

    def _on_move(self, scene_pos: QPointF) -> None:
        if self.xy is None or not self.view.sceneBoundingRect().contains(scene_pos):
            self.hovered.emit(None)
        else:
            self.hovered.emit(self.view.mapSceneToView(scene_pos))

    def _on_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or self.xy is None:
            return
        if self.legend.sceneBoundingRect().contains(ev.scenePos()):
            return                     # the legend toggles classes itself
        if not self.view.sceneBoundingRect().contains(ev.scenePos()):
            return
        self.clickedAt.emit(self.view.mapSceneToView(ev.scenePos()))
