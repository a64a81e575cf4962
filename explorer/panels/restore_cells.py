"""The Denoise / Enhance panel's row of images: original file | clean | corrupted | each restorer, zoomed together.

Each `RestoreCell` is a title, a `PixelView` and its numbers (PSNR / SSIM / seconds). The `RestoreRow` links every
view (zoom or pan one and all follow; a crosshair at the same pixel in each) and says under the row which pixel the
pointer is on and its value in every image. The "original file" cell is shown only for an opened file: the file as a
viewer shows it (upright, its own colours, its own resolution), placed so that the square the models see lines up
with the converted images (a dashed outline marks it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from PySide6.QtCore import QRectF, Qt
from PySide6.QtWidgets import QHBoxLayout, QLabel, QVBoxLayout, QWidget

from core.images import to_uint8
from explorer.widgets.linked_image_view import LinkedViews, PixelView

COLUMNS = (("clean", "clean"), ("corrupted", "corrupted"), ("vae", "VAE"), ("vae-refined", "VAE refined"),
           ("diffusion", "diffusion"), ("classical", "classical"))
RESULT_KEYS = ("corrupted", "vae", "vae-refined", "diffusion", "classical")
DIFF_GAIN = 2.0   # the difference view shows min(1, 2 |x - clean|)
STALE_TEXT = "out of date:\npress Restore"
POINTER_HINT = "wheel: zoom all · drag: pan all · double-click: fit · point at a pixel to read it in every image"


class RestoreCell(QWidget):
    """One image of the row with its title and metrics underneath."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.name = title
        self.title = QLabel(f"<b>{title}</b>")
        self.title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.view = PixelView()
        self.info = QLabel("–")
        self.info.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.info.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.info.setFixedHeight(3 * self.info.fontMetrics().lineSpacing() + 6)   # same height in every cell
        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        lay.addWidget(self.title)
        lay.addWidget(self.view, 1)
        lay.addWidget(self.info)
        self.image: np.ndarray | None = None      # float (C, H, W) in [0, 1]
        self.result_text = ""                     # the numbers of the shown result (kept while it is out of date)
        self.stale = False

    def clear(self, text: str = "–") -> None:
        self.image = None
        self.result_text = ""
        self.set_stale(False)
        self.view.clear()
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
        self.view.set_faded(stale)
        self.info.setText(STALE_TEXT if stale else self.result_text)
        self.info.setToolTip(f"computed with other settings:\n{self.result_text}" if stale else "")
        self.info.setStyleSheet("color: #a05a00;" if stale else "")


def _format_value(v: np.ndarray) -> str:
    return f"{float(v[0]):.2f}" if len(v) == 1 else "(" + ", ".join(f"{float(c):.2f}" for c in v[:3]) + ")"


class RestoreRow(QWidget):
    """The cells side by side, linked; the difference toggle; the pixel read-out under them."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.original = RestoreCell("original file")
        self.original.hide()
        self.cells = {key: RestoreCell(title) for key, title in COLUMNS}
        self.links = LinkedViews(self)
        self.difference = False
        self.readout = QLabel(POINTER_HINT)
        self.readout.setWordWrap(True)       # seven values on a narrow screen take two lines, not a wider window
        self.readout.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.images = QWidget()
        row = QHBoxLayout(self.images)
        row.setContentsMargins(0, 0, 0, 0)
        for cell in (self.original, *self.cells.values()):
            row.addWidget(cell, 1)
            self.links.add(cell.view)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.images, 1)
        lay.addWidget(self.readout)
        self.links.crosshairMoved.connect(self._show_values)

    # ---- images -----------------------------------------------------------------------------------------------------
    def set_cell(self, key: str, img: np.ndarray, text: str) -> None:
        cell = self.cells[key]
        first = all(c.image is None for c in self.cells.values())
        cell.image = img
        cell.show_result(text)
        self.redraw(key)
        if first:    # the first image of a new row: fit it (zoom and pan are kept while the row fills in)
            self.links.fit(img.shape[2], img.shape[1])

    def redraw(self, key: str) -> None:
        cell, clean = self.cells[key], self.cells["clean"].image
        if cell.image is None:
            return
        shown = cell.image
        if self.difference and clean is not None and key != "clean" and clean.shape == shown.shape:
            shown = np.minimum(1.0, DIFF_GAIN * np.abs(shown - clean))
        cell.view.set_image(to_uint8(shown), values=np.moveaxis(cell.image, 0, -1))

    def set_difference(self, on: bool) -> None:
        self.difference = on
        for key in self.cells:
            self.redraw(key)

    def clear(self) -> None:
        for cell in self.cells.values():
            cell.clear()
        self.links.set_crosshair(math.nan, math.nan)    # its read-out was of the images just cleared

    def mark_stale(self, stale: bool) -> None:
        for key in RESULT_KEYS:
            self.cells[key].set_stale(stale)

    def out_of_date(self) -> bool:
        return any(cell.stale for cell in self.cells.values())

    def show_original(self, pixels: np.ndarray | None, rect: QRectF | None = None, size: int = 0,
                      title: str = "") -> None:
        """The opened file as a viewer shows it, placed over `rect` in the converted image's pixels, with the
        (0, 0, size, size) square the models see outlined; None hides the cell."""
        if pixels is None:
            self.original.clear()
            self.original.hide()
            return
        self.original.view.set_image(pixels, rect=rect, outline=QRectF(0, 0, size, size))
        self.original.title.setText(f"<b>original file</b> ({title})" if title else "<b>original file</b>")
        self.original.info.setText("as the file shows it;\ndashed: the square\nthe models see")
        self.original.show()

    # ---- the pixel under the pointer --------------------------------------------------------------------------------
    def _show_values(self, x: float, y: float) -> None:
        if not (math.isfinite(x) and math.isfinite(y)):
            self.readout.setText(POINTER_HINT)
            return
        parts = []
        for cell in (self.original, *self.cells.values()):
            v = None if cell.isHidden() else cell.view.value_at(x, y)
            if v is not None:
                parts.append(f"{cell.name} {_format_value(v)}")
        self.readout.setText(f"pixel x {math.floor(x)}, y {math.floor(y)}: " + (" · ".join(parts) or "off the image"))


SETTING_NAMES = {"corruption": "corruption", "strength": "strength", "seed": "seed",
                 "refine_steps": "refinement steps", "diffusion_samples": "diffusion samples", "image": "image",
                 "vae": "VAE", "diffusion": "diffusion model"}
PROMPT = "Press Restore to corrupt the image and compare the restorers."


def describe_settings(s: dict[str, Any]) -> str:
    """A row's inputs as the header line shows them."""
    return (f"{s['corruption']} (strength {s['strength']:g}), seed {s['seed']}, {s['refine_steps']} refinement steps, "
            f"{s['diffusion_samples']} diffusion samples, on {s['image']}")


def changed_inputs(now: dict[str, Any], computed: dict[str, Any]) -> list[str]:
    """The inputs that differ: models by identity (a new snapshot is a new model), the rest by value."""
    return [k for k in now if (now[k] is not computed[k] if k in ("vae", "diffusion") else now[k] != computed[k])]


class RowHeader(QLabel):
    """The line above the row: what it shows, or that it is out of date and which inputs changed."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(PROMPT, parent)
        self.setWordWrap(True)

    def prompt(self) -> None:
        self.setText(PROMPT)
        self.setStyleSheet("")

    def show_inputs(self, computed: dict[str, Any], changed: list[str], *, running: bool, converted: bool) -> None:
        what = describe_settings(computed)
        if changed:
            names = ", ".join(SETTING_NAMES[k] for k in changed)
            self.setText(f"<b>Out of date</b> ({names} changed): the results below were computed for {what}. "
                         "Press Restore to recompute.")
            self.setStyleSheet("color: #a05a00;")
        else:
            self.setText(("Restoring " if running else "Results for ") + what
                         + (" — scores against the converted image" if converted else ""))
            self.setStyleSheet("")
