"""The latent map's scatter: one pyqtgraph item per class (legend toggles them), colours by class or by a value,
a shade over the space far from the data, markers for the selection and the decoded position, and a thumbnail that
follows the cursor. It knows nothing of models: the panel tells it what to show and hears where the user points.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QImage, QPixmap
from PySide6.QtWidgets import QLabel, QWidget

# Ten distinct colours (matplotlib's tab10), then hues for datasets with more classes.
TAB10 = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
HOVER_PX = 7          # a point is "under the cursor" within this many screen pixels
COLOUR_STEPS = 32


def class_colour(i: int, n: int):
    return pg.mkColor(TAB10[i]) if n <= len(TAB10) else pg.intColor(i, hues=n)


class _MapViewBox(pg.ViewBox):
    """Left-drag sweeps (reported in data coordinates) instead of panning; other buttons keep pyqtgraph's gestures."""

    sigSweep = Signal(object, bool)   # (QPointF in view coords, finished)

    def mouseDragEvent(self, ev, axis=None):
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.sigSweep.emit(self.mapSceneToView(ev.scenePos()), bool(ev.isFinish()))
            return
        super().mouseDragEvent(ev, axis)


class LatentScatter(pg.PlotWidget):
    clickedAt = Signal(object)          # QPointF in data coordinates: a left click on the map (not on the legend)
    sweptTo = Signal(object, bool)      # (QPointF in data coordinates, drag finished)
    hovered = Signal(object)            # QPointF in data coordinates, or None when the cursor left the map

    def __init__(self, parent: QWidget | None = None) -> None:
        self.view = _MapViewBox()
        super().__init__(parent, viewBox=self.view)
        self.view.setAspectLocked(False)
        self.setBackground("w")
        self.hideAxis("left")
        self.hideAxis("bottom")
        self.legend = self.addLegend(offset=(5, 5), labelTextColor="k", brush=pg.mkBrush(255, 255, 255, 200))
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
        for marker in (self._marker, self._query_marker):
            marker.setZValue(10)
            self.addItem(marker)
        self.view.sigSweep.connect(self.sweptTo)
        self.scene().sigMouseClicked.connect(self._on_click)
        self.scene().sigMouseMoved.connect(self._on_move)
        self.hover_label = QLabel(self)        # the thumbnail "tooltip": a child label that follows the cursor
        self.hover_label.setStyleSheet("background: white; border: 1px solid #888; padding: 2px;")
        self.hover_label.hide()

    # ---- content ----------------------------------------------------------------------------------------------------
    def set_title(self, text: str) -> None:
        """The map's title: which projection of which latents is shown."""
        self.title_text = text
        self.setTitle(text or None, color="k")

    def clear_points(self) -> None:
        for item in self.items:
            self.removeItem(item)
        self.items, self.class_index = [], []
        self.xy, self._tree = None, None
        self.legend.clear()
        self._marker.setData([], [])
        self._query_marker.setData([], [])
        self._shade.clear()
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
            self.addItem(item)
            self.items.append(item)
            self.class_index.append(idx)
        self.view.autoRange(padding=0.05)

    def set_colour_values(self, values: np.ndarray | None) -> None:
        """Colour by class (None) or by a value per point (viridis, 2nd to 98th percentile)."""
        n = len(self.items)
        if values is None:
            # a list, not one brush: a single brush would not replace per-point brushes set by another mode
            for c, (item, idx) in enumerate(zip(self.items, self.class_index, strict=True)):
                item.setBrush([pg.mkBrush(class_colour(c, n))] * len(idx))
            return
        # Shared brushes from a colour map: pyqtgraph caches one symbol per brush, so this stays fast where a
        # distinct brush per point would not.
        lo, hi = np.percentile(values, [2, 98])
        top = COLOUR_STEPS - 1
        bins = np.clip(((values - lo) / max(hi - lo, 1e-12) * top).round().astype(int), 0, top)
        lut = pg.colormap.get("viridis").getLookupTable(nPts=COLOUR_STEPS, mode="qcolor")
        brushes = [pg.mkBrush(q) for q in lut]
        for item, idx in zip(self.items, self.class_index, strict=True):
            item.setBrush([brushes[b] for b in bins[idx]])

    def set_shade(self, rgba: np.ndarray, x_range: tuple[float, float], y_range: tuple[float, float],
                  visible: bool) -> None:
        """An (H, W, 4) uint8 image, row 0 at y_range[0], laid under the points."""
        # ImageItem's first axis is x: transpose the (row = y) image
        self._shade.setImage(rgba.transpose(1, 0, 2), autoLevels=False)
        self._shade.setRect(float(x_range[0]), float(y_range[0]), float(x_range[1] - x_range[0]),
                            float(y_range[1] - y_range[0]))
        self._shade.setVisible(visible)

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

    # ---- pointing ---------------------------------------------------------------------------------------------------
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
        scale = max(1, 64 // max(1, image.height()))
        self.hover_label.setPixmap(QPixmap.fromImage(image).scaled(image.width() * scale, image.height() * scale))
        self.hover_label.adjustSize()
        p = self.mapFromScene(self.view.mapViewToScene(pos))
        self.hover_label.move(min(p.x() + 14, max(0, self.width() - self.hover_label.width())),
                              min(p.y() + 14, max(0, self.height() - self.hover_label.height())))
        self.hover_label.show()
        self.hover_label.raise_()

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
