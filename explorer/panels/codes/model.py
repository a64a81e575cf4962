"""`CodesModel`: what the Codes tab shows, in one small object its views listen to (napari's pattern).

It holds the VQ-VAE, the picked image, its code grid as encoded and as edited, the decode of the edited grid, the
code the user paints with, the codebook's usage over a split and each code's decoded look. Painting a cell decodes
the grid at once on the GUI thread: one (grid x grid) decode is a millisecond or two for the presets' models (the
tests' digits VQ-VAE: ~1 ms). The usage counts and the palette's looks come from workers (`usage_job`,
`looks_job`) and arrive through `set_usage` / `set_looks`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal


class CodesModel(QObject):
    modelChanged = Signal()     # another VQ-VAE (or none): everything below was cleared
    imageChanged = Signal()     # another original image (its codes, as encoded, are the edited grid again)
    codesChanged = Signal()     # the edited grid (and so the decode) changed
    brushChanged = Signal(int)  # the code the user paints with
    usageChanged = Signal()     # counts per code over a split arrived (or were cleared)
    looksChanged = Signal()     # each code's decoded look arrived (or was cleared)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.vq: Any = None                        # a DiscreteCodeModel (CPU snapshot, eval mode) or None
        self.original: np.ndarray | None = None    # float32 (C, H, W) in [0, 1]
        self.caption = ""
        self.encoded: np.ndarray | None = None     # int64 (grid, grid): the original's codes
        self.codes: np.ndarray | None = None       # int64 (grid, grid): as edited
        self.decoded: np.ndarray | None = None     # float32 (C, H, W): decode of `codes`
        self.reconstruction: np.ndarray | None = None   # decode of `encoded`
        self.brush = 0
        self.usage: np.ndarray | None = None       # int64 (codebook_size,): cells per code over `usage_split`
        self.usage_split = ""
        self.looks: np.ndarray | None = None       # float32 (K, C, H, W): the decode of a grid of one code

    @property
    def codebook_size(self) -> int:
        return 0 if self.vq is None else int(self.vq.codebook_size)

    @property
    def grid(self) -> int:
        return 0 if self.vq is None else int(self.vq.grid)

    def set_model(self, vq: Any) -> None:
        self.vq = vq
        self.original = self.encoded = self.codes = self.decoded = self.reconstruction = None
        self.usage = self.looks = None
        self.caption = self.usage_split = ""
        self.brush = 0
        self.modelChanged.emit()

    def set_image(self, image: np.ndarray, caption: str) -> None:
        """`image`: uint8 or float (C, H, W) of the model's shape; encoded here (one small forward pass)."""
        import torch

        x = np.asarray(image, dtype=np.float32)
        if image.dtype == np.uint8:
            x = x / 255.0
        with torch.no_grad():
            codes = self.vq.encode_codes(torch.from_numpy(x)[None])[0]
        self.original, self.caption = x, caption
        self.encoded = codes.cpu().numpy().astype(np.int64)
        self.codes = self.encoded.copy()
        self.reconstruction = self._decode(self.encoded)
        self.decoded = self.reconstruction.copy()
        self.imageChanged.emit()
        self.codesChanged.emit()

    def paint(self, row: int, col: int) -> bool:
        """Set cell (row, col) to the brush's code and decode; False when it already held it (nothing to do)."""
        if self.codes is None or not (0 <= row < self.grid and 0 <= col < self.grid):
            return False
        if self.codes[row, col] == self.brush:
            return False
        self.codes[row, col] = self.brush
        self.decoded = self._decode(self.codes)
        self.codesChanged.emit()
        return True

    def reset(self) -> None:
        """The edited grid back to the original's codes."""
        if self.encoded is None:
            return
        self.codes = self.encoded.copy()
        self.decoded = self.reconstruction.copy()
        self.codesChanged.emit()

    def set_brush(self, code: int) -> None:
        code = int(code)
        if not 0 <= code < self.codebook_size or code == self.brush:
            return
        self.brush = code
        self.brushChanged.emit(code)

    def edited_cells(self) -> int:
        return 0 if self.codes is None else int((self.codes != self.encoded).sum())

    def set_usage(self, counts: np.ndarray | None, split: str = "") -> None:
        self.usage, self.usage_split = counts, split
        self.usageChanged.emit()

    def dead_codes(self) -> np.ndarray:
        """Indices of the codes no cell of the usage split uses (empty before the counts are in)."""
        return np.empty(0, dtype=np.int64) if self.usage is None else np.flatnonzero(self.usage == 0)

    def set_looks(self, looks: np.ndarray | None) -> None:
        self.looks = looks
        self.looksChanged.emit()

    def _decode(self, codes: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self.vq.decode_codes(torch.from_numpy(codes)[None])[0].float().cpu().numpy()


def usage_job(vq: Any, images: Any, batch_size: int = 256, progress: Any = None,
              should_stop: Any = None) -> np.ndarray | None:
    """Counts per code (codebook_size,) over every cell of `images` (uint8 (N, C, H, W) tensor); None when stopped.
    Runs on a worker (PanelTasks)."""
    import torch

    from core.images import as_float

    counts = torch.zeros(int(vq.codebook_size), dtype=torch.long)
    n = len(images)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            if should_stop is not None and should_stop():
                return None
            codes = vq.encode_codes(as_float(images[start:start + batch_size]))
            counts += torch.bincount(codes.reshape(-1).cpu(), minlength=len(counts))
            if progress is not None:
                progress(min(start + batch_size, n), n)
    return counts.numpy()


def looks_job(vq: Any, batch_size: int = 128, should_stop: Any = None) -> np.ndarray | None:
    """Each code's decoded look: the decode of a grid filled with that one code, float32 (K, C, H, W)."""
    import torch

    k, g = int(vq.codebook_size), int(vq.grid)
    out = []
    with torch.no_grad():
        for start in range(0, k, batch_size):
            if should_stop is not None and should_stop():
                return None
            codes = torch.arange(start, min(k, start + batch_size)).view(-1, 1, 1).expand(-1, g, g)
            out.append(vq.decode_codes(codes.contiguous()).float().cpu())
    return torch.cat(out).numpy()
