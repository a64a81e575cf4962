"""2-D maps of latent codes (PCA, UMAP, t-SNE) and their disk cache (`positions.py` maps a map position back to
a latent).

PCA is a 16x16 eigendecomposition: instant, so the map always has something to show. UMAP is the slow, pretty one;
it runs in a worker. Two things make it fast here (measured in bench/bench_latent.py):
- the k-nearest-neighbour graph is computed exactly with torch (chunked cdist + topk), which for a few thousand to
  tens of thousands of 16-D points is much faster than umap's NN-descent and needs no numba compile;
- fewer optimisation epochs than umap's default for n <= 10,000 (500), with "pca" init instead of the spectral
  eigensolve. On 10,000 digit latents of the bundled VAE: trustworthiness (k=10) 0.954 vs 0.956 for umap-learn's
  defaults, ~19x faster on the same (busy) machine; 100 epochs or spectral init changed trustworthiness by < 0.001.
umap itself is imported lazily inside `umap_2d` (its numba compile costs ~30 s cold) after NUMBA_CACHE_DIR points at
the user cache, so the second launch reuses the compiled code.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.errors import UserError
from core.files import atomic_write
from core.paths import cache_dir
from core.training.checkpoint import LoadedModel

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]

METHODS = ("pca", "umap", "tsne")

# umap's defaults are 15 neighbours and min_dist 0.1; we keep them (they decide what the map looks like) and only
# change what decides the time: the kNN search, the epochs and the init.
UMAP_NEIGHBORS = 15
UMAP_MIN_DIST = 0.1
UMAP_EPOCHS = 200
TSNE_PERPLEXITY = 30.0


@dataclass(frozen=True)
class ProjectionSettings:
    """What the user may change about a UMAP / t-SNE map (the latent map panel's settings row). The defaults are
    umap-learn's and openTSNE's; they decide what the map looks like, so they are part of the cache key."""

    n_neighbors: int = UMAP_NEIGHBORS   # UMAP: how local the structure it keeps is (2-200)
    min_dist: float = UMAP_MIN_DIST     # UMAP: how tightly points may pack (0-1)
    perplexity: float = TSNE_PERPLEXITY  # t-SNE: the effective number of neighbours

    def __post_init__(self) -> None:
        if not 2 <= self.n_neighbors <= 500:
            raise UserError(f"UMAP neighbours must be between 2 and 500, not {self.n_neighbors}")
        if not 0.0 <= self.min_dist <= 1.0:
            raise UserError(f"UMAP min distance must be between 0 and 1, not {self.min_dist}")
        if not 1.0 <= self.perplexity <= 500.0:
            raise UserError(f"t-SNE perplexity must be between 1 and 500, not {self.perplexity}")

    def key(self, method: str) -> str:
        """The part of a cache file name these settings decide for `method` ("" for PCA: it has none)."""
        if method == "umap":
            return f"k{self.n_neighbors}-d{self.min_dist:g}"
        if method == "tsne":
            return f"p{self.perplexity:g}"
        return ""


def pca_2d_with_variance(mu: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project (N, D) latents onto their first two principal components -> ((N, 2) float32, (2,) the fraction of
    the total variance each axis explains).

    Signs are fixed (the largest loading of each component is positive) so the same data always gives the same map.
    """
    x = np.asarray(mu, dtype=np.float64)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"pca_2d needs a non-empty (N, D) array, got shape {x.shape}")
    x = x - x.mean(axis=0)
    if x.shape[1] == 1:
        return np.concatenate([x, np.zeros_like(x)], axis=1).astype(np.float32), np.array([1.0, 0.0])
    cov = x.T @ x / max(len(x) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)            # ascending eigenvalues
    comps = vecs[:, ::-1][:, :2]
    signs = np.sign(comps[np.abs(comps).argmax(axis=0), [0, 1]])
    comps = comps * np.where(signs == 0, 1.0, signs)
    total = float(vals.sum())
    explained = np.clip(vals[::-1][:2], 0.0, None) / total if total > 0 else np.zeros(2)
    return (x @ comps).astype(np.float32), explained


def pca_2d(mu: np.ndarray) -> np.ndarray:
    """Project (N, D) latents onto their first two principal components -> (N, 2) float32 (see
    `pca_2d_with_variance`)."""
    return pca_2d_with_variance(mu)[0]


def exact_knn(x: np.ndarray, k: int, *, chunk: int = 2048, device: str | torch.device = "cpu"
              ) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours (each point is its own first neighbour, as umap expects).

    Returns (indices int64 (N, k), distances float32 (N, k)), Euclidean. Chunked so memory stays ~chunk * N floats.
    On a CUDA `device` the blocks are computed there (in float32: TF32 would reorder close neighbours).
    """
    device = torch.device(device)
    data = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32)).to(device)
    n = len(data)
    k = min(k, n)
    if device.type == "cuda":
        chunk = max(chunk, 8192)   # fewer, larger blocks keep the GPU busy
    idx_out = np.empty((n, k), dtype=np.int64)
    dist_out = np.empty((n, k), dtype=np.float32)
    sq = (data * data).sum(1)
    data_t = data.T.contiguous()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        _knn_blocks(data, data_t, sq, k, chunk, idx_out, dist_out)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    return idx_out, dist_out


def _knn_blocks(data: torch.Tensor, data_t: torch.Tensor, sq: torch.Tensor, k: int, chunk: int,
                idx_out: np.ndarray, dist_out: np.ndarray) -> None:
    n = len(data)
    for start in range(0, n, chunk):
        q = data[start:start + chunk]
        # |a-b|^2 = |a|^2 + |b|^2 - 2ab, and a row's ranking needs only |b|^2 - 2ab (|a|^2 is the row's constant):
        # one fused addmm over the (chunk, N) block instead of four passes. Measured on 30,000 x 24 on 2 cores:
        # 2.7 s against 6.6 s for the unfused form (70,000: the kNN part of UMAP 34 s -> ~14 s); same neighbours.
        d = torch.addmm(sq[None, :], q, data_t, beta=1.0, alpha=-2.0)
        rows = torch.arange(len(q), device=d.device)
        d[rows, rows + start] = -float("inf")   # the point itself always comes first, even with duplicates
        vals, ids = torch.topk(d, k, dim=1, largest=False, sorted=True)
        vals = (vals + sq[start:start + chunk, None]).clamp_min_(0.0)
        vals[:, 0] = 0.0                        # itself
        idx_out[start:start + chunk] = ids.cpu().numpy()
        dist_out[start:start + chunk] = vals.sqrt().cpu().numpy()


class _Stopped(Exception):
    pass


class _TqdmSink:
    """A file for umap's tqdm bar: turns its "n/total" text into progress calls and raises to cancel."""

    _pattern = re.compile(r"(\d+)/(\d+)")

    def __init__(self, progress: Progress | None, should_stop: ShouldStop | None, offset: int, total: int) -> None:
        self.progress, self.should_stop, self.offset, self.total = progress, should_stop, offset, total
        self.stopped = False

    def write(self, text: str) -> int:
        if self.stopped:              # raised once; the bar's close() and __del__ write again: stay quiet
            return len(text)
        if self.should_stop is not None and self.should_stop():
            self.stopped = True
            raise _Stopped
        m = self._pattern.search(text)
        if m and self.progress is not None and int(m.group(2)) > 0:
            done = self.offset + int(int(m.group(1)) * (self.total - self.offset) / int(m.group(2)))
            self.progress(min(done, self.total - 1), self.total)
        return len(text)

    def flush(self) -> None:
        pass


_UMAP_PATCHED = False


def _import_umap():
    """Import umap with numba's cache in the user cache dir (the first import compiles for ~30 s, later ones load)."""
    global _UMAP_PATCHED
    os.environ.setdefault("NUMBA_CACHE_DIR", str(cache_dir("numba")))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import umap
        if not _UMAP_PATCHED:
            _UMAP_PATCHED = True
            _cache_umap_kernels()
            _give_umap_a_cancellable_bar()
    return umap


def _give_umap_a_cancellable_bar() -> None:
    """umap's layout loop reports through a tqdm bar, which `_TqdmSink` raises through to cancel. tqdm's `refresh()`
    acquires the class-wide write lock and releases it without try/finally, so that raise left the lock held by a
    finished worker thread: the next bar anywhere in the process (the next UMAP, tqdm's monitor thread) waited for
    ever, and a window closing joined that worker for ever (the 'projection' worker that never stopped, seen in CI).
    umap's layout module gets a bar class of its own: a private lock, released on a raise, and no monitor thread."""
    import threading

    from tqdm import tqdm as std_tqdm

    class CancellableBar(std_tqdm):
        monitor_interval = 0
        _lock = threading.RLock()

        def refresh(self, nolock: bool = False, lock_args=None) -> bool:
            if self.disable or nolock:
                return super().refresh(nolock=nolock, lock_args=lock_args)
            with self._lock:
                self.display()
            return True

    try:
        import umap.layouts as layouts

        if isinstance(getattr(layouts, "tqdm", None), type):
            layouts.tqdm = CancellableBar
    except ImportError:   # umap's internals moved: its bar stays tqdm's (cancelling then still works, at that risk)
        pass


def _cache_umap_kernels() -> None:
    """umap-learn jit-compiles its fuzzy-graph and layout kernels without numba's on-disk cache, so every launch paid
    ~10 s (busy 2-core machine) on its first fit even with a warm cache; re-jit the three we use with cache=True
    (measured: first fit of a new process 10.9 s -> 0.3 s). Skipped quietly if umap's internals ever change."""
    try:
        import numba
        import umap.layouts as layouts
        import umap.umap_ as umap_

        def cached(dispatcher, **extra):
            opts = {k: v for k, v in dispatcher.targetoptions.items() if k != "nopython"}
            return numba.njit(dispatcher.py_func, **{**opts, **extra, "cache": True})

        layouts._nb_optimize_layout_euclidean_single_epoch = numba.njit(
            layouts._optimize_layout_euclidean_single_epoch, fastmath=True, parallel=False, cache=True)
        for name in ("smooth_knn_dist", "compute_membership_strengths"):
            setattr(umap_, name, cached(getattr(umap_, name)))
    except Exception:  # noqa: BLE001 - only a speed-up: umap's internals differ between versions, and without the
        pass           # cached kernels UMAP still runs (it compiles them at every launch)


def _cuml_umap():
    try:
        from cuml.manifold import UMAP
    except (ImportError, RuntimeError, OSError):   # not installed, or installed without a usable GPU / CUDA
        return None
    return UMAP


def umap_2d(mu: np.ndarray, *, seed: int = 0, n_epochs: int = UMAP_EPOCHS, init: str = "pca",
            n_neighbors: int = UMAP_NEIGHBORS, min_dist: float = UMAP_MIN_DIST,
            progress: Progress | None = None, should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """UMAP of (N, D) latents -> (N, 2) float32, deterministic for a seed; None when stopped.

    Uses RAPIDS cuML's UMAP when it is installed, else umap-learn with a torch-computed exact kNN graph.
    """
    x = np.ascontiguousarray(mu, dtype=np.float32)
    if len(x) < 4:
        raise UserError(f"UMAP needs at least 4 points, got {len(x)}; encode a larger split")
    total = 100
    stop = should_stop or (lambda: False)
    neighbors = min(n_neighbors, len(x) - 1)
    cuml = _cuml_umap()
    if cuml is not None:
        emb = cuml(n_neighbors=neighbors, min_dist=min_dist, n_epochs=n_epochs, random_state=seed,
                   init="spectral").fit_transform(x)
        return np.asarray(emb, dtype=np.float32)
    if progress:
        progress(0, total)
    knn_idx, knn_dist = exact_knn(x, neighbors)
    if stop():
        return None
    if progress:
        progress(10, total)
    umap = _import_umap()
    if stop():
        return None
    if progress:
        progress(20, total)
    sink = _TqdmSink(progress, should_stop, 20, total)
    reducer = umap.UMAP(n_neighbors=neighbors, n_components=2, random_state=seed, n_epochs=n_epochs, init=init,
                        min_dist=min_dist, precomputed_knn=(knn_idx, knn_dist), n_jobs=1,
                        tqdm_kwds={"disable": False, "file": sink, "mininterval": 0.1, "bar_format": "{n}/{total}",
                                   "ascii": True})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # "no search index", "n_jobs overridden": expected, not actionable
            emb = reducer.fit_transform(x)
    except _Stopped:
        return None
    if progress:
        progress(total, total)
    return np.asarray(emb, dtype=np.float32)


def umap_reference(mu: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """umap-learn with all its defaults (the baseline the benchmark compares against)."""
    umap = _import_umap()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(umap.UMAP(random_state=seed).fit_transform(mu), dtype=np.float32)


TSNE_EARLY_ITERS, TSNE_ITERS = 250, 500   # openTSNE's defaults: early exaggeration, then the main optimisation
TSNE_REPORT_EVERY = 10                    # iterations between progress reports / stop checks (each costs a KL eval)


def tsne_2d(mu: np.ndarray, *, seed: int = 0, perplexity: float = TSNE_PERPLEXITY,
            progress: Progress | None = None, should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """t-SNE -> (N, 2) float32, or None when stopped.

    openTSNE rather than scikit-learn's: it calls back between iterations, so the map reports progress and a cancel
    takes effect within TSNE_REPORT_EVERY iterations (scikit-learn's fit cannot be interrupted), and its FFT
    gradients scale to large N. bench/bench_latent.py, 10,000 digits latents on 2 cores: 26.5 s against 50.2 s,
    trustworthiness 0.989 against 0.990; a cancel half way returned 120 ms after the request."""
    stop = should_stop or (lambda: False)
    if stop():
        return None
    from openTSNE import TSNE

    x = np.asarray(mu, dtype=np.float32)
    perplexity = float(min(perplexity, max(2.0, (len(x) - 1) / 3)))   # openTSNE needs 3 * perplexity < N
    total = TSNE_EARLY_ITERS + TSNE_ITERS
    done = 0

    def report(_iteration: int, _error: float, _embedding: Any) -> bool:
        nonlocal done
        done = min(total, done + TSNE_REPORT_EVERY)
        if progress:
            progress(done, total)
        return bool(stop())              # True ends openTSNE's optimisation at once

    if progress:
        progress(0, total)
    emb = TSNE(perplexity=perplexity, early_exaggeration_iter=TSNE_EARLY_ITERS, n_iter=TSNE_ITERS,
               random_state=seed, n_jobs=-1, callbacks=report, callbacks_every_iters=TSNE_REPORT_EVERY).fit(x)
    if stop():
        return None
    if progress:
        progress(total, total)
    return np.asarray(emb, dtype=np.float32)


def project(mu: np.ndarray, method: str, *, seed: int = 0, settings: ProjectionSettings | None = None,
            progress: Progress | None = None, should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """Dispatch on the method name ("pca", "umap", "tsne")."""
    s = settings or ProjectionSettings()
    if method == "pca":
        return pca_2d(mu)
    if method == "umap":
        return umap_2d(mu, seed=seed, n_neighbors=s.n_neighbors, min_dist=s.min_dist, progress=progress,
                       should_stop=should_stop)
    if method == "tsne":
        return tsne_2d(mu, seed=seed, perplexity=s.perplexity, progress=progress, should_stop=should_stop)
    raise UserError(f"unknown projection {method!r}; choose one of: {', '.join(METHODS)}")


# --- the disk cache --------------------------------------------------------------------------------------------------

def model_key(loaded: LoadedModel) -> str:
    """Identify a loaded model: a hash of its checkpoint file, or the training step of an in-memory snapshot."""
    path = loaded.path
    if path is not None and Path(path).is_file():
        h = hashlib.blake2b(digest_size=8)
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return f"ckpt-{h.hexdigest()}"
    return f"snapshot-step{int(loaded.step)}"


def projection_cache_path(model: str, split: str, method: str, seed: int, mu: np.ndarray,
                          settings: ProjectionSettings | None = None) -> Path:
    """Where a projection is cached: keyed by model, split, method, its settings when not the defaults, seed, n, plus
    a digest of the latents themselves (two snapshots at the same step of different runs must not share a map)."""
    digest = hashlib.blake2b(np.ascontiguousarray(mu, dtype=np.float32).tobytes(), digest_size=6).hexdigest()
    tuned = "" if settings is None or settings == ProjectionSettings() else f"-{settings.key(method)}"
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{model}-{split}-{method}{tuned}-s{seed}-n{len(mu)}-{digest}")
    return cache_dir("projections") / f"{safe}.npy"


def cached_projection(mu: np.ndarray, method: str, *, model: str, split: str, seed: int = 0,
                      settings: ProjectionSettings | None = None, progress: Progress | None = None,
                      should_stop: ShouldStop | None = None) -> np.ndarray | None:
    """`project` through the disk cache (PCA is never cached: recomputing it is faster than reading a file)."""
    if method == "pca":
        return pca_2d(mu)
    path = projection_cache_path(model, split, method, seed, mu, settings)
    if path.is_file():
        try:
            xy = np.load(path, allow_pickle=False)
            if xy.shape == (len(mu), 2):
                return xy.astype(np.float32)
        except (OSError, ValueError):
            pass                                # a damaged cache file is recomputed and overwritten
    xy = project(mu, method, seed=seed, settings=settings, progress=progress, should_stop=should_stop)
    if xy is not None:
        def write(tmp: Path) -> None:
            with open(tmp, "wb") as f:          # a file object: np.save would append ".npy" to a path
                np.save(f, xy, allow_pickle=False)

        atomic_write(path, write)
    return xy
