"""What the latent map shows, as data: one or all splits encoded (through a disk cache), the latent layers a map can
project, finding points by class or index, and a selection written as CSV.

Encoding MNIST's 70,000 images takes ~10 s on a 2-core CPU; the cache makes reopening the map (another projection,
another layer, the next session) instant. Cached per model and split, like the projections: the key is the model
(its checkpoint file's hash, or for an in-memory snapshot its step plus a digest of its weights) and a digest of the
split's pixels and labels, so a changed dataset or another run's snapshot never reads a stale encoding.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError
from core.files import FileRefused, atomic_write, open_regular
from core.latent.encoding import Latents, encode_split
from core.latent.projection import model_key
from core.paths import cache_dir
from core.training.checkpoint import LoadedModel

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]

ALL_SPLITS = ("train", "val", "test")
_FIELDS = ("mu", "logvar", "labels", "recon_error", "kl")


@dataclass(frozen=True)
class MapData:
    """The latents of one or more splits, concatenated; row i came from image `index_in_split[i]` of split
    `split_names[split_of[i]]`."""

    latents: Latents
    split_names: tuple[str, ...]
    split_of: np.ndarray          # (N,) int8, index into split_names
    index_in_split: np.ndarray    # (N,) int64

    def __len__(self) -> int:
        return len(self.latents)

    def origin(self, row: int) -> tuple[str, int]:
        """(split name, index in that split) of map row `row`."""
        return self.split_names[int(self.split_of[row])], int(self.index_in_split[row])

    def describe(self) -> str:
        """"test" or "train + val + test": what the map shows, for titles and the status line."""
        return " + ".join(self.split_names)


def latent_layers(model) -> tuple[tuple[str, slice], ...]:
    """The latent layers of a VAE as (name, columns of the flat latent): one ("z", all columns) for a plain VAE;
    a hierarchical VAE lists its layers, top first, as `latent_layers` (names and sizes of consecutive slices)."""
    layers = getattr(model, "latent_layers", None) or (("z", int(model.latent_dim)),)
    out, start = [], 0
    for name, size in layers:
        out.append((str(name), slice(start, start + int(size))))
        start += int(size)
    if start != int(model.latent_dim):
        raise UserError(f"the model's latent layers add up to {start} dimensions, but its latent has "
                        f"{model.latent_dim}; the checkpoint's metadata is inconsistent")
    return tuple(out)


# ---- the encoding cache ---------------------------------------------------------------------------------------------

def encoding_key(loaded: LoadedModel) -> str:
    """The model part of the cache key. A snapshot's step alone is not unique (two runs both reach step 500)."""
    key = model_key(loaded)
    if key.startswith("ckpt-"):
        return key
    h = hashlib.blake2b(digest_size=6)
    for name, tensor in sorted(loaded.model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return f"{key}-{h.hexdigest()}"


def encoding_cache_path(model: str, split_name: str, split) -> Path:
    h = hashlib.blake2b(digest_size=6)
    h.update(split.images.cpu().numpy().tobytes())
    h.update(split.labels.cpu().numpy().astype(np.int64).tobytes())
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{model}-{split_name}-n{len(split)}-{h.hexdigest()}")
    return cache_dir("encodings") / f"{safe}.npz"


def _read_cached(path: Path, n: int) -> Latents | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in _FIELDS}
    except (OSError, ValueError, KeyError):
        return None                       # a damaged cache file is re-encoded and overwritten
    if any(len(a) != n for a in arrays.values()):
        return None
    return Latents(**arrays)


def _write_cached(path: Path, lat: Latents) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:        # a file object: np.savez would append ".npz" to a path
            np.savez(f, **{k: getattr(lat, k) for k in _FIELDS})

    atomic_write(path, write)


def cached_encoding(loaded: LoadedModel, split_name: str, split, *, key: str | None = None, batch_size: int = 512,
                    progress: Progress | None = None, should_stop: ShouldStop | None = None) -> Latents | None:
    """`encode_split` through the disk cache; None when stopped. `key` is `encoding_key(loaded)` (pass it to hash a
    snapshot's weights once for several splits)."""
    path = encoding_cache_path(key or encoding_key(loaded), split_name, split)
    lat = _read_cached(path, len(split))
    if lat is not None:
        if progress is not None:
            progress(len(split), len(split))
        return lat
    lat = encode_split(loaded.model, split, batch_size=batch_size, progress=progress, should_stop=should_stop)
    if lat is not None:
        _write_cached(path, lat)
    return lat


def encode_to_fit(model, loaded: LoadedModel | None, split_name: str, split, *, total: int,
                  progress: Progress | None = None, should_stop: ShouldStop | None = None) -> Latents | None:
    """A split's latents for fitting a sampler (mixture, diffusion prior) to `model`: through the snapshot's disk
    cache when `loaded` is given, encoded afresh otherwise; None when stopped. Progress is reported over `total`
    steps (the encoding's images first; the fit reports the rest)."""
    def step(done: int, _total: int) -> None:
        if progress is not None:
            progress(done, total)

    if loaded is not None:
        return cached_encoding(loaded, split_name, split, progress=step, should_stop=should_stop)
    return encode_split(model, split, progress=step, should_stop=should_stop)


def encode_for_map(loaded: LoadedModel, splits: Sequence[tuple[str, object]], *, batch_size: int = 512,
                   progress: Progress | None = None, should_stop: ShouldStop | None = None) -> MapData | None:
    """Encode (or read from the cache) each (name, `core.data.Split`) and concatenate them in order; None when
    stopped. Progress counts images over all the splits."""
    if not splits:
        raise UserError("choose at least one split to map")
    total = sum(len(s) for _, s in splits)
    key = encoding_key(loaded)
    parts: list[Latents] = []
    done = 0
    for name, split in splits:
        def step(d: int, _t: int, offset: int = done) -> None:
            if progress is not None:
                progress(offset + d, total)

        lat = cached_encoding(loaded, name, split, key=key, batch_size=batch_size, progress=step,
                              should_stop=should_stop)
        if lat is None:
            return None
        parts.append(lat)
        done += len(split)
    joined = Latents(**{k: np.concatenate([getattr(p, k) for p in parts]) for k in _FIELDS})
    split_of = np.concatenate([np.full(len(p), i, np.int8) for i, p in enumerate(parts)])
    index = np.concatenate([np.arange(len(p), dtype=np.int64) for p in parts])
    return MapData(joined, tuple(name for name, _ in splits), split_of, index)


# ---- finding and exporting points -----------------------------------------------------------------------------------

def find_points(query: str, data: MapData, class_names: Sequence[str]) -> np.ndarray:
    """The map rows a search names: a class name ("7", "cat"; case-insensitive), an image index ("123", "#123":
    that index in every split shown), or a split and an index ("train 123"). Empty when nothing matches."""
    text = query.strip().lower()
    if not text:
        return np.zeros(0, np.int64)
    names = [str(c).lower() for c in class_names]
    if text in names:   # a class name wins over an index: digits' classes are called "0" .. "9"
        return np.flatnonzero(data.latents.labels == names.index(text)).astype(np.int64)
    m = re.fullmatch(r"(?:(train|val|test)\s*)?#?\s*(\d+)", text)
    if m is None:
        return np.zeros(0, np.int64)
    split, index = m.group(1), int(m.group(2))
    hit = data.index_in_split == index
    if split is not None:
        if split not in data.split_names:
            return np.zeros(0, np.int64)
        hit &= data.split_of == data.split_names.index(split)
    return np.flatnonzero(hit).astype(np.int64)


def worst_reconstructions(data: MapData, n: int) -> np.ndarray:
    """The rows of the n largest reconstruction errors, worst first."""
    err = data.latents.recon_error
    n = max(0, min(int(n), len(err)))
    if n == 0:
        return np.zeros(0, np.int64)
    part = np.argpartition(-err, n - 1)[:n]
    return part[np.argsort(-err[part], kind="stable")].astype(np.int64)


def write_selection_csv(path: str | Path, data: MapData, rows: np.ndarray, class_names: Sequence[str]) -> None:
    """One line per selected image, in the order given: its split, its index in that split (what `vae-explorer` and
    the panels' index boxes take), class and reconstruction error."""
    rows = np.asarray(rows, dtype=np.int64)
    lat = data.latents

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["split", "index", "label", "class", "reconstruction_error", "kl"])
            for r in rows:
                split, index = data.origin(int(r))
                label = int(lat.labels[r])
                name = class_names[label] if 0 <= label < len(class_names) else str(label)
                out.writerow([split, index, label, name, f"{lat.recon_error[r]:.6g}", f"{lat.kl[r]:.6g}"])

    try:
        atomic_write(Path(path), write)
    except OSError as exc:
        raise UserError(f"could not write {path}: {exc.strerror or exc}; choose a writable folder") from exc


MAX_SELECTION_CSV_BYTES = 256 << 20   # 70,000 rows are ~2 MB
MAX_SELECTION_NUMBER = 2**62           # an index or label past this is no image's (and overflows int64 arithmetic)


def read_selection_csv(path: str | Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(splits, indices, labels) of a selection CSV written by `write_selection_csv` (or by hand, or saved by a
    spreadsheet, byte-order mark included: the columns "split" and "index" are required, "label" optional: -1 where
    missing). Checked row by row: one UserError naming the line for anything else. Only a regular file is read (a
    FIFO is refused, never waited on)."""
    path = Path(path)
    try:
        with open_regular(path, MAX_SELECTION_CSV_BYTES) as raw, \
                io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as f:
            rows = list(csv.DictReader(f))
            fields = set(rows[0]) if rows else set()
    except FileNotFoundError:
        raise UserError(f"no selection file at {path}; export one from the latent map (Indices CSV...)") from None
    except FileRefused as exc:
        raise UserError(f"{path} is not a selection CSV: {exc}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"could not read {path} as a selection CSV: {exc}") from None
    if not rows:
        raise UserError(f"{path} lists no images; it needs a header with 'split' and 'index' and one line per image")
    if not {"split", "index"} <= fields:
        raise UserError(f"{path} needs the columns 'split' and 'index' (it has {', '.join(sorted(map(str, fields)))}); "
                        "export it from the latent map (Indices CSV...)")
    splits, indices, labels = [], [], []
    for line, row in enumerate(rows, start=2):
        short = None in row.values()
        if short or None in row:   # fewer cells than the header, or more
            raise UserError(f"{path}, line {line}: {'too few' if short else 'too many'} cells for the header's "
                            f"{len(fields)} columns")
        split = (row["split"] or "").strip()
        if split not in ("train", "val", "test"):
            raise UserError(f"{path}, line {line}: split {split!r} is not train, val or test")
        try:
            index = int(row["index"])
            label = int(row["label"]) if row.get("label") not in (None, "") else -1
        except ValueError:
            raise UserError(f"{path}, line {line}: index {row['index']!r} (and label, if given) must be whole "
                            "numbers") from None
        if index < 0:
            raise UserError(f"{path}, line {line}: index {index} is negative")
        if index > MAX_SELECTION_NUMBER or not -1 <= label <= MAX_SELECTION_NUMBER:
            raise UserError(f"{path}, line {line}: {'index' if index > MAX_SELECTION_NUMBER else 'label'} "
                            f"{index if index > MAX_SELECTION_NUMBER else label} is out of range")
        splits.append(split)
        indices.append(index)
        labels.append(label)
    return splits, np.asarray(indices, dtype=np.int64), np.asarray(labels, dtype=np.int64)

