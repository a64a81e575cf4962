"""Where each dataset's images come from: one loader per format, returning raw uint8 arrays at native size.

`core.data` owns what happens next (class subsets, splits, channel conversion, resizing, the device); a loader only
reads its files, reporting anything the user can fix as a `UserError`. torchvision and Pillow are imported inside the
loaders that need them, so the default dataset (digits) starts without paying for them.
"""

from __future__ import annotations

import gzip
import importlib
import importlib.util
import pickle
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from core.config import DataConfig
from core.errors import UserError
from core.files import atomic_write
from core.paths import cache_dir

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

_RESIZE_CHUNK = 4096  # images resized at once: bounds the float copy (60k MNIST images would need ~250 MB)


@dataclass
class Source:
    """A dataset as its files hold it: all classes, native size and channels (folders: already at image_size)."""

    class_names: tuple[str, ...]
    images: np.ndarray  # uint8 (N, C, H, W): the official training set, or everything when there is no test set
    labels: np.ndarray  # int64 (N,)
    test_images: np.ndarray | None = None
    test_labels: np.ndarray | None = None
    skipped: tuple[str, ...] = ()


def resize(x: Tensor, size: int) -> Tensor:
    """uint8 (N, C, H, W) -> uint8 (N, C, size, size), bilinear with antialiasing (clean when shrinking 28->16)."""
    if x.shape[-2:] == (size, size):
        return x
    out = [F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True, align_corners=False)
           .round_().clamp_(0, 255).to(torch.uint8) for chunk in x.split(_RESIZE_CHUNK)]
    return torch.cat(out) if out else x.new_zeros((0, x.shape[1], size, size))


@cache
def _digits_arrays(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 8x8 digits as uint8 (N, 1, S, S) and labels; cached so the GUI's reloads are instant.
    The arrays are read-only because every caller shares them."""
    # Reading the bundled CSV directly avoids importing sklearn.datasets (~0.6 s) on the GUI's first launch;
    # load_digits is the fallback if scikit-learn ever moves the file.
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",")
        pixels, labels = table[:, :-1].reshape(-1, 1, 8, 8), table[:, -1]
    else:
        from sklearn.datasets import load_digits
        bunch = load_digits()
        pixels, labels = bunch.images[:, None], bunch.target
    images = torch.from_numpy(np.rint(pixels * (255.0 / 16.0)).astype(np.uint8))  # 0..16 -> 0..255
    images = resize(images, image_size).numpy()
    labels = labels.astype(np.int64)
    images.flags.writeable = labels.flags.writeable = False
    return images, labels


def _load_digits(cfg: DataConfig, _arg: str) -> Source:
    images, labels = _digits_arrays(cfg.image_size)
    return Source(tuple(str(d) for d in range(10)), images, labels)


def _data_root(cfg: DataConfig) -> Path:
    return Path(cfg.data_root).expanduser() if cfg.data_root else cache_dir("datasets")


def _not_available(what: str, root: Path, layout: str, cfg: DataConfig, reason: str) -> UserError:
    why = f"could not be downloaded ({reason.strip().splitlines()[0] if reason.strip() else 'unknown error'})" \
        if cfg.download else "downloading is off"
    return UserError(f"{what} is not in {root} and {why}. Connect to the internet and allow downloads, put the files "
                     f"there ({layout}), or pass --data-root with a folder that has them.")


def _load_mnist_like(cls_name: str, what: str) -> Callable[[DataConfig, str], Source]:
    def load(cfg: DataConfig, _arg: str) -> Source:
        from torchvision import datasets
        cls = getattr(datasets, cls_name)
        root = _data_root(cfg)
        raw = root / cls_name / "raw"
        # torchvision only looks for the unpacked IDX files; accept the .gz files users download by hand too.
        for gz_name, _md5 in cls.resources:
            target = raw / gz_name.removesuffix(".gz")
            if not target.is_file() and (raw / gz_name).is_file():
                def unpack(tmp: Path, gz: Path = raw / gz_name) -> None:
                    with gzip.open(gz, "rb") as src, open(tmp, "wb") as dst:
                        shutil.copyfileobj(src, dst)

                atomic_write(target, unpack)
        layout = f"{raw}/train-images-idx3-ubyte and the other three IDX files, optionally .gz"
        try:
            train = cls(str(root), train=True, download=cfg.download)
            test = cls(str(root), train=False, download=False)
        except (OSError, RuntimeError) as err:  # URLError is an OSError; torchvision wraps others in RuntimeError
            raise _not_available(what, root, layout, cfg, str(err)) from None
        except (ValueError, TypeError, EOFError) as err:  # the files exist but are not valid IDX files
            raise UserError(f"the {what} files in {raw} are damaged ({err}); delete them and load again") from None
        names = tuple(str(d) for d in range(10)) if cls_name == "MNIST" else tuple(cls.classes)
        return Source(names, train.data.numpy()[:, None], train.targets.numpy().astype(np.int64),
                       test.data.numpy()[:, None], test.targets.numpy().astype(np.int64))
    return load


class _ArrayUnpickler(pickle.Unpickler):
    """CIFAR's batches are pickles, and unpickling runs whatever a file names. We read the files without torchvision's
    md5 check (so users may supply their own or trimmed batches, and launch skips hashing 170 MB), which is only safe
    because this unpickler builds nothing but plain containers and numpy arrays."""

    # _codecs.encode: how Python 3 writes bytes into protocol-2 pickles (it only converts a str to bytes).
    _ALLOWED = {("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")} | {
        (f"numpy.{core}.{mod}", name) for core in ("core", "_core")
        for mod, name in (("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer"))}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        if module.startswith("numpy.core.") and importlib.util.find_spec("numpy._core"):
            module = module.replace("numpy.core.", "numpy._core.")  # numpy 2 renamed it; avoids a warning
        return getattr(importlib.import_module(module), name)


def _load_cifar10(cfg: DataConfig, _arg: str) -> Source:
    from torchvision.datasets import CIFAR10
    from torchvision.datasets.utils import extract_archive
    root = _data_root(cfg)
    folder = root / CIFAR10.base_folder
    batch_files = [name for name, _md5 in CIFAR10.train_list + CIFAR10.test_list]
    if not all((folder / f).is_file() for f in [*batch_files, CIFAR10.meta["filename"]]):
        if (root / CIFAR10.filename).is_file():
            extract_archive(str(root / CIFAR10.filename), str(root))  # the archive, downloaded by hand
        elif cfg.download:
            try:
                CIFAR10(str(root), train=False, download=True)
            except (OSError, RuntimeError) as err:
                raise _not_available("CIFAR-10", root, f"{folder}/data_batch_1..5, test_batch, batches.meta", cfg,
                                     str(err)) from None
        else:
            raise _not_available("CIFAR-10", root, f"{folder}/data_batch_1..5, test_batch, batches.meta", cfg, "")

    def read(name: str) -> dict:
        try:
            with open(folder / name, "rb") as f:
                return _ArrayUnpickler(f, encoding="latin1").load()
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as err:
            raise UserError(f"cannot read CIFAR-10 file {folder / name} ({err}); delete it and load again") from None

    def stack(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        parts = [read(n) for n in names]
        try:
            images = np.concatenate([np.asarray(p["data"], np.uint8).reshape(-1, 3, 32, 32) for p in parts])
            labels = np.concatenate([np.asarray(p["labels"], np.int64) for p in parts])
        except (KeyError, ValueError, TypeError) as err:
            raise UserError(f"the CIFAR-10 batches in {folder} are not in CIFAR's format ({err})") from None
        return images, labels

    train_images, train_labels = stack(batch_files[:-1])
    test_images, test_labels = stack(batch_files[-1:])
    names = tuple(str(n) for n in read(CIFAR10.meta["filename"]).get(CIFAR10.meta["key"], range(10)))
    return Source(names, train_images, train_labels, test_images, test_labels)


_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def fit_square(im: PILImage, mode: str, size: int) -> PILImage:
    """An opened image as a folder dataset's images reach the models: upright (EXIF), in `mode` ("L" or "RGB"; 16-bit
    grey scaled, alpha on black), centre-cropped to size x size. Also what the GUI does with a single opened file."""
    from PIL import Image, ImageOps

    im.draft(mode, (size, size))  # JPEGs decode at a reduced scale: much faster for big photos
    return ImageOps.fit(_upright_in_mode(im, mode), (size, size), Image.Resampling.BILINEAR)


def _upright_in_mode(im: PILImage, mode: str) -> PILImage:
    """A Pillow image the way a viewer shows it, as 8-bit `mode` ("L" or "RGB") pixels: EXIF orientation applied,
    16-bit greyscale scaled down, transparency composited on black. Pillow's own conversions do the rest (palette,
    CMYK, "1", RGB <-> L with ITU-R 601 luma)."""
    from PIL import Image, ImageOps
    ImageOps.exif_transpose(im, in_place=True)  # phone photos store "rotate 90°" as a tag, not as rotated pixels
    if im.mode in _SIXTEEN_BIT or im.mode == "I":
        # Pillow's convert("L") clips 16-bit values at 255 instead of scaling them (a 16-bit image turns white), so
        # this one conversion is ours. We scale by the type's full range (65535 -> 255): an image keeps its absolute
        # brightness, as viewers show it, and a folder of 16-bit scans keeps their relative exposure. "I" is 32-bit,
        # but older Pillow versions open 16-bit PNGs as "I": values that fit 16 bits are read as 16-bit; others
        # (true 32-bit data, whose range the file does not say) are stretched to the image's own maximum.
        a = np.asarray(im).astype(np.float32).clip(0, None)  # float32 holds every 16-bit value exactly
        top = 65535.0 if im.mode != "I" or a.max(initial=0) <= 65535 else a.max()
        im = Image.fromarray(np.rint(a * (255.0 / top)).astype(np.uint8), "L")
    elif "A" in im.getbands() or "transparency" in im.info:  # LA, RGBA, PA, and P/L/RGB with a transparent colour
        # Composite on black, not white: transparent pixels hold no picture, and black is "nothing" in the datasets
        # this trains on (MNIST, digits, Fashion-MNIST, a dark-background photo): a light digit on a transparent
        # background comes out as MNIST draws it. Dropping alpha instead (what convert() does) would show whatever
        # colour the transparent pixels happen to store.
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (0, 0, 0, 255)), rgba)
    return im.convert(mode)


def load_folder(cfg: DataConfig, path_text: str) -> Source:
    """One subfolder per class, any image Pillow reads, each resized and centre-cropped to cfg.image_size. Read into
    memory whole: that suits the thousands of images a desktop user trains on."""
    from PIL import Image
    root = Path(path_text).expanduser()
    if not root.is_dir():
        raise UserError(f"image folder {root} does not exist; give folder:PATH with one subfolder per class")
    visible = [p for p in sorted(root.iterdir()) if not p.name.startswith(".")]
    if not visible:
        raise UserError(f"image folder {root} is empty; put each class's images in its own subfolder")
    class_dirs = [p for p in visible if p.is_dir()]
    if not class_dirs:
        raise UserError(f"image folder {root} has no class subfolders; put each class's images in its own subfolder, "
                        f"e.g. {root / 'cats'}/*.png and {root / 'dogs'}/*.png")
    size, mode = cfg.image_size, "L" if cfg.channels == 1 else "RGB"
    arrays: list[np.ndarray] = []
    labels: list[int] = []
    skipped: list[str] = []
    all_gray = True
    for label, class_dir in enumerate(class_dirs):
        before = len(arrays)
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and not p.name.startswith("."))
        for path in files:
            try:
                with Image.open(path) as im:
                    im = fit_square(im, mode, size)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
                skipped.append(str(path))  # not an image, truncated, or unreadable: the Trainer reports it
                continue
            a = np.asarray(im, dtype=np.uint8)
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if len(a) == 3 and all_gray:
                all_gray = bool((a[0] == a[1]).all() and (a[1] == a[2]).all())
            arrays.append(a)
            labels.append(label)
        if len(arrays) == before:
            raise UserError(f"class folder {class_dir} has no readable images ({len(files)} files, none readable)")
    images = np.stack(arrays)
    if cfg.channels == 0 and all_gray:
        images = np.ascontiguousarray(images[:, :1])  # every image is grayscale: keep one channel
    return Source(tuple(p.name for p in class_dirs), images, np.asarray(labels, np.int64), skipped=tuple(skipped))


LOADERS: dict[str, Callable[[DataConfig, str], Source]] = {
    "digits": _load_digits,
    "mnist": _load_mnist_like("MNIST", "MNIST"),
    "fashion-mnist": _load_mnist_like("FashionMNIST", "Fashion-MNIST"),
    "cifar10": _load_cifar10,
}

