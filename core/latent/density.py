"""Ex-post density estimation: sample a trained VAE's latents from a density fitted to its encoded training set.

Ghosh et al. (2020, "From variational to deterministic autoencoders") observe that the aggregate posterior of a trained
VAE, the cloud of its training images' posterior means, does not fill the prior N(0, I): it has holes and denser
regions, and a z drawn from the prior often lands where no training image was encoded, which decodes to a blurry or
ambiguous image. Fitting a small Gaussian mixture to the posterior means after training and sampling z from it instead
("ex-post density estimation") keeps samples where the decoder has learnt to draw. The mixture is fitted per class:
a conditional VAE's z codes style given the label, and each class's styles form their own cloud.

`fit_density` encodes a split (an iterator-free long function with `progress` / `should_stop`) and fits one
scikit-learn `GaussianMixture` per class; the fit is cached per model snapshot (the model object) and data, so a panel
that switches back and forth fits once. `LatentDensity.latents` maps noise to z, so a sampler grid's noise (one draw
per cell or one row shared by all) and its temperature mean the same as for the prior: z = mean_k + T * L_k eps, with
the component k chosen by a uniform draw per cell.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass, field

import numpy as np
import torch

from core.errors import UserError
from core.latent.encoding import Progress, ShouldStop, encode_indices
from core.latent.map_data import encode_to_fit, latent_layers
from core.models.protocol import LatentVariableModel
from core.training.checkpoint import LoadedModel

COVARIANCES = ("full", "diag")
# Measured on the bundled digits model (bench/bench_density_sampling.py, 100 samples per class, 3 seeds; Fréchet
# score in the judge's features, lower is better): prior 19.1, 1/2/4/8 full-covariance components 12.4/11.1/10.4/9.5,
# diagonal 16.4/14.4/12.1/10.3; recall prior 0.31, full 0.39-0.42, diagonal 0.25-0.32. Full covariances keep the
# correlations between latent units that make a digit's style; 4 components: most of the gain while each component
# still rests on ~30 of a class's ~130 digits (8 rest on ~16 in 24 dimensions: closer to copying training images).
DEFAULT_COMPONENTS = 4
DEFAULT_COVARIANCE = "full"
# Added to each covariance's diagonal: a class of ~130 digits in 24 dimensions gives near-singular full covariances.
REG_COVAR = 1e-4


@dataclass(frozen=True)
class ClassDensity:
    """One class's mixture as arrays: weights (K,), means (K, D), Cholesky factors of the covariances (K, D, D)."""

    weights: np.ndarray
    means: np.ndarray
    chol: np.ndarray


@dataclass(frozen=True)
class LatentDensity:
    """Per-class Gaussian mixtures over a VAE's posterior means; class 0 holds all the data of an unconditional VAE."""

    classes: dict[int, ClassDensity]
    latent_dim: int
    components: int
    covariance: str
    n_images: int
    missing: tuple[int, ...] = field(default=())   # classes without training images: sampled from the prior
    origin: str = ""   # what it was fitted to, when not a split's training images (see `fit_region`)
    fitted: int | None = None   # the mixture covers z[:, :fitted] (a hierarchical VAE's top layer); the rest: prior
    layer: str = ""             # that layer's name

    def describe(self) -> str:
        kind = "diagonal" if self.covariance == "diag" else self.covariance
        parts = f"{self.components} {kind}-covariance component" + ("s" if self.components != 1 else "")
        where = "" if self.fitted is None else \
            f" (top layer {self.layer}: {self.fitted} of {self.latent_dim} dimensions; the layers below from the prior)"
        if self.origin:
            return f"GMM, {parts}, fitted to {self.origin}{where}"
        return f"per-class GMM, {parts}, fitted to {self.n_images} encoded training images{where}"

    def latents(self, labels: np.ndarray, noise: np.ndarray, uniform: np.ndarray) -> np.ndarray:
        """z (B, D) float32 for `labels` (B,), from standard-normal `noise` (B, D) (already scaled by a temperature)
        and `uniform` draws (B,) in [0, 1) that pick each z's mixture component."""
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        noise = np.asarray(noise, dtype=np.float64)
        uniform = np.asarray(uniform, dtype=np.float64).reshape(-1)
        if noise.shape != (len(labels), self.latent_dim) or uniform.shape != (len(labels),):
            raise ValueError(f"need noise ({len(labels)}, {self.latent_dim}) and uniform ({len(labels)},), got "
                             f"{noise.shape} and {uniform.shape}")
        z = noise.copy()   # a class without a density keeps its prior draw; so do the dimensions it does not cover
        k_dims = self.latent_dim if self.fitted is None else self.fitted
        for c in np.unique(labels):
            density = self.classes.get(int(c))
            if density is None:
                if int(c) not in self.missing:
                    raise UserError(f"the fitted density has no class {int(c)}; fit it to this model's data again")
                continue
            rows = labels == c
            cdf = np.cumsum(density.weights)
            k = np.minimum(np.searchsorted(cdf / cdf[-1], uniform[rows], side="right"), len(cdf) - 1)
            z[rows, :k_dims] = density.means[k] + np.einsum("bij,bj->bi", density.chol[k], noise[rows, :k_dims])
        return z.astype(np.float32)

    def sample(self, labels: torch.Tensor | np.ndarray, generator: torch.Generator | None = None, *,
               temperature: float = 1.0) -> torch.Tensor:
        """z (B, D) for `labels`, float32 on the CPU; the draws come from `generator` (what evaluation passes)."""
        labels = torch.as_tensor(labels).reshape(-1).cpu()
        noise = torch.randn(len(labels), self.latent_dim, generator=generator) * float(temperature)
        uniform = torch.rand(len(labels), generator=generator)
        return torch.from_numpy(self.latents(labels.numpy(), noise.double().numpy(), uniform.double().numpy()))


def _mixture(points: np.ndarray, components: int, covariance: str, seed: int) -> ClassDensity:
    from sklearn.mixture import GaussianMixture  # on first fit: importing scikit-learn costs 66 MiB at launch

    if len(points) == 1:   # a class of one image (1 per class): scikit-learn needs two; its fit would be this
        return ClassDensity(np.ones(1), points.copy(), np.sqrt(REG_COVAR) * np.eye(points.shape[1])[None])
    k = max(1, min(components, len(points) // 2))   # at least two points per component
    gmm = GaussianMixture(k, covariance_type=covariance, reg_covar=REG_COVAR, random_state=seed, n_init=1)
    gmm.fit(points)
    cov = gmm.covariances_
    if covariance == "diag":
        chol = np.stack([np.diag(np.sqrt(c)) for c in cov])
    else:
        chol = np.linalg.cholesky(cov)
    return ClassDensity(gmm.weights_.copy(), gmm.means_.copy(), chol)


# A region's fit uses at most this many of its points (chosen evenly): a 70,000-point selection fits in about a second
# (on the Sampler's worker) instead of many, and 5,000 points pin down a 4-component mixture in the latent sizes the
# presets train.
REGION_FIT_POINTS = 5000


def fit_region(latents: np.ndarray, num_classes: int, *, origin: str, seed: int = 0) -> LatentDensity:
    """One Gaussian mixture fitted to `latents` (M, D), the posterior means of images a user selected, shared by every
    class: sampling it with any label draws z from that region of the latent space ("more like these", or these
    styles with another label). Full covariances when the region has enough points to estimate them (M > 2 D),
    diagonal otherwise; about one component per 50 points, at most DEFAULT_COMPONENTS."""
    points = np.asarray(latents, dtype=np.float64)
    if points.ndim != 2 or len(points) < 2:
        raise UserError("select at least two images to sample from their region")
    if len(points) > REGION_FIT_POINTS:
        points = points[np.linspace(0, len(points) - 1, REGION_FIT_POINTS).astype(np.int64)]
    dim = points.shape[1]
    covariance = "full" if len(points) > 2 * dim else "diag"
    components = max(1, min(DEFAULT_COMPONENTS, len(points) // 50))
    mixture = _mixture(points, components, covariance, seed)
    classes = {c: mixture for c in range(max(num_classes, 1))}
    return LatentDensity(classes, dim, len(mixture.weights), covariance, len(latents), origin=origin)


def fit_region_of_images(model: LatentVariableModel, dataset, splits, indices, *, origin: str, seed: int = 0,
                         should_stop: ShouldStop | None = None) -> LatentDensity | None:
    """`fit_region` of dataset images (split names and indices, e.g. a selection made with another model), encoded
    by `model` first (at most REGION_FIT_POINTS of them, chosen evenly); None if stopped."""
    indices = np.asarray(indices, dtype=np.int64)
    splits = np.asarray(list(splits))
    if len(indices) < 2:
        raise UserError("select at least two images to sample from their region")
    keep = np.unique(np.linspace(0, len(indices) - 1, min(len(indices), REGION_FIT_POINTS)).astype(np.int64))
    mu = encode_indices(model, dataset, splits[keep], indices[keep], should_stop=should_stop)
    if mu is None:
        return None
    region = fit_region(mu, model.num_classes, origin=origin, seed=seed)
    return LatentDensity(region.classes, region.latent_dim, region.components, region.covariance, len(indices),
                         origin=origin)


def _top_layer(model: LatentVariableModel) -> tuple[str, int] | None:
    """(name, size) of a hierarchical VAE's top latent layer; None for a one-layer latent.

    Fitting the mixture there only (the top layer holds an image's global shape; the lower layers' codes are
    standardised noise under the model's own learnt conditional prior) against fitting the whole flat code, measured
    on the `mnist` preset (z1 16 + z2 64 + z3 256 = 336 dimensions, 15 epochs on the 3,600 real training digits;
    bench/bench_density_sampling.py --layers top,all --components 4, 2 seeds, 100 samples per class):
    prior: Fréchet 35.0, accuracy 0.954, precision 0.86, recall 0.31; full covariances on the top layer: 24.7, 0.971,
    0.90, 0.37 (fit ~1 s); on the whole code: 22.4, 0.987, 0.93, 0.32 (fit ~4 s, growing with n * D^2: about a
    minute for MNIST's 60,000, extrapolated, not measured). The whole code stays the default (better Fréchet score
    and accuracy); the top layer keeps more diversity and costs less."""
    layers = latent_layers(model)
    if len(layers) <= 1:
        return None
    name, cols = layers[0]
    return name, cols.stop - cols.start


def check_density_settings(components: int, covariance: str) -> None:
    if covariance not in COVARIANCES:
        raise UserError(f"unknown covariance {covariance!r}; choose {' or '.join(COVARIANCES)}")
    if not 1 <= int(components) <= 64:
        raise UserError(f"the density needs 1 to 64 mixture components per class, got {components}")


# A fit per (model snapshot, data, settings): the model object is the snapshot (panels get copies), so a weak key
# drops the fits of models nobody holds any more.
_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, LatentDensity]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _data_key(split, components: int, covariance: str, seed: int, top: tuple | None = None) -> tuple:
    images = split.images
    return (len(split), tuple(images.shape), int(images.sum()), int(split.labels.sum()), components, covariance, seed,
            top)


def cached_density(model: LatentVariableModel, split, *, components: int = DEFAULT_COMPONENTS,
                   covariance: str = DEFAULT_COVARIANCE, seed: int = 0, top_layer: tuple | None = None
                   ) -> LatentDensity | None:
    """The density already fitted for this model snapshot and data, or None."""
    with _CACHE_LOCK:
        return _CACHE.get(model, {}).get(_data_key(split, components, covariance, seed, top_layer))


def fit_density(model: LatentVariableModel, split, *, components: int = DEFAULT_COMPONENTS,
                covariance: str = DEFAULT_COVARIANCE, seed: int = 0, progress: Progress | None = None,
                should_stop: ShouldStop | None = None, loaded: LoadedModel | None = None, split_name: str = "train",
                top_layer: bool = False) -> LatentDensity | None:
    """Encode `split` (the training images) and fit a Gaussian mixture per class to the posterior means; None if
    stopped. Cached per model snapshot and data: a second call returns the first fit at once. With `loaded` (the
    LoadedModel of `model`), the encoding goes through the latent map's disk cache (`split_name` names the split
    there), so a density of a model whose training split was mapped, or fitted in an earlier session, skips it.
    `top_layer` fits a hierarchical VAE's top layer only, the layers below sampled from their prior (see
    `_top_layer`; the whole code is the default)."""
    check_density_settings(components, covariance)
    top = _top_layer(model) if top_layer else None
    found = cached_density(model, split, components=components, covariance=covariance, seed=seed, top_layer=top)
    if found is not None:
        return found
    n_classes = max(model.num_classes, 1)
    steps = len(split) + n_classes          # images encoded, then one unit per class fitted
    latents = encode_to_fit(model, loaded, split_name, split, total=steps, progress=progress, should_stop=should_stop)
    if latents is None:
        return None
    mu = latents.mu.astype(np.float64)
    dim = mu.shape[1]
    if top is not None:
        mu = mu[:, :top[1]]
    labels = latents.labels if model.num_classes else np.zeros(len(mu), dtype=np.int64)
    classes, missing = {}, []
    for c in range(n_classes):
        if should_stop is not None and should_stop():
            return None
        points = mu[labels == c]
        if len(points) == 0:
            missing.append(c)
        else:
            classes[c] = _mixture(points, components, covariance, seed)
        if progress is not None:
            progress(len(split) + c + 1, steps)
    density = LatentDensity(classes, dim, components, covariance, len(mu), tuple(missing),
                            fitted=None if top is None else top[1], layer="" if top is None else top[0])
    with _CACHE_LOCK:
        _CACHE.setdefault(model, {})[_data_key(split, components, covariance, seed, top)] = density
    return density
