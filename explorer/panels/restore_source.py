"""The Denoise / Enhance panel's image file: read as a folder dataset's images are read, plus the file as it is.

`read_image_file` gives what the models see (core's reader, `core.data.sources.fit_square`: EXIF orientation, 16-bit
grey scaled, alpha on black, centre crop, resized to the models' size and channels), a plain-words note when that
changed the image, and the original for display: the whole file, upright and in its own colours (at most
`DISPLAY_MAX` pixels a side), with where it lies in the converted image's pixel coordinates so the two line up.
Qt-free: the panel turns the rectangle into its view's placement.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import UserError

MODE_NAMES = {"L": "grey", "1": "black-and-white", "P": "palette", "I;16": "16-bit grey", "I": "32-bit grey",
              "F": "float grey", "LA": "grey + alpha"}
DISPLAY_MAX = 1024   # the original is shown at most this many pixels a side (a 24-megapixel photo needs no more)


@dataclass(frozen=True)
class OpenedFile:
    path: str
    image: np.ndarray                          # what the models see: float (C, H, W) in [0, 1]
    converted: bool                            # the file was not already in the models' size and colour
    note: str                                  # what the conversion did, in plain words ("" when nothing)
    original: np.ndarray                       # the whole file for display: uint8 (S, S) or (S, S, 3), letterboxed
    original_rect: tuple[float, float, float, float]   # where `original` lies in `image`'s pixels (x, y, w, h)
    original_size: tuple[int, int]             # the file's (width, height), upright
    original_mode: str

    @property
    def name(self) -> str:
        return Path(self.path).name


def _describe(mode: str) -> str:
    return MODE_NAMES.get(mode, mode)


def read_image_file(path: str, channels: int, size: int) -> OpenedFile:
    """The image file at `path` for models of `channels` (1 or 3) and `size`; a UserError in one line if it is not
    an image Pillow can read."""
    from PIL import Image, UnidentifiedImageError

    from core.data.sources import fit_square

    target = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as im:
            (w, h), mode = im.size, im.mode
            fitted = fit_square(im, target, size)
            arr = np.asarray(fitted, dtype=np.float32) / 255.0
        with Image.open(path) as im:
            original, rect, upright = _original_for_display(im, size)
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError) as e:
        raise UserError(f"could not read {Path(path).name} as an image ({e}); choose a PNG, JPEG or similar "
                        "file") from None
    converted = (w, h) != (size, size) or mode != target
    note = ""
    if converted:
        uw, uh = upright
        note = (f"converted from {uw}x{uh} {_describe(mode)} to {size}x{size} {_describe(target)} for this model"
                + (" (centre-cropped to a square)" if uw != uh else "")
                + ": the restorers see, and the scores compare against, the converted image shown as clean.")
    image = arr[None] if arr.ndim == 2 else np.moveaxis(arr, -1, 0)
    return OpenedFile(str(path), image, converted, note, original, rect, upright, mode)


def _original_for_display(im, size: int) -> tuple[np.ndarray, tuple[float, float, float, float], tuple[int, int]]:
    """The whole image, upright, letterboxed on black into a square and read by the same reader (so 16-bit and
    transparent files look as they do to the models), and that square's place in the models' (size x size) pixels:
    the models see the centred min(w, h) square of the upright image."""
    from PIL import Image, ImageOps

    from core.data.sources import fit_square

    im.draft("RGB", (DISPLAY_MAX, DISPLAY_MAX))   # big JPEGs decode at a reduced scale
    im = ImageOps.exif_transpose(im)
    if im.mode == "P":
        im = im.convert("RGBA")       # a palette's index 0 is not black; RGBA keeps its transparency
    elif im.mode not in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F", "RGB", "RGBA"):
        im = im.convert("RGB")        # CMYK, YCbCr, ...: zero is not black there
    w, h = im.size
    side, small = max(w, h), min(w, h)
    square = Image.new(im.mode, (side, side))   # zeros: black, and transparent where there is alpha
    left, top = (side - w) // 2, (side - h) // 2
    square.paste(im, (left, top))
    colour = len([b for b in im.getbands() if b != "A"]) > 1
    shown = np.asarray(fit_square(square, "RGB" if colour else "L", min(side, DISPLAY_MAX)))
    scale = size / small       # converted pixels per original pixel
    x0 = (left + (w - small) / 2) * scale
    y0 = (top + (h - small) / 2) * scale
    return shown, (-x0, -y0, side * scale, side * scale), (w, h)
