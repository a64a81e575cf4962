"""A learned prior over a trained VAE's latents: a small class-conditional diffusion model fitted to the encoded
training set (two-stage VAE, Dai & Wipf 2019; latent diffusion, Rombach et al. 2022).

The Gaussian mixture of density.py already keeps samples off the prior's holes; a diffusion model over the same
posterior means can follow the cloud's curved, many-armed shape instead of a few ellipsoids. It is trained as a
second stage, the VAE frozen: encode the training split (through the latent map's disk cache), standardise each
latent dimension, and fit `VectorDiffusion(LatentDenoiser(...))` (core/models/latent_diffusion.py) with v-prediction;
sampling runs DPM-Solver++ for `sample_steps` steps and maps back. For a hierarchical VAE the prior covers the whole
flat code by default, or its top layer only (`top_layer`), the layers below drawn from their N(0, I) prior as the
mixture does.

A fit is cached per model snapshot and data twice: in memory (a weak key on the model object, like the mixture) and
on disk (a safetensors file under the cache folder named by the model's checkpoint hash or weight digest, the data's
digest and the settings), so the next `sample --from diffusion-prior` of the same checkpoint reads it at once.
`save_prior` / `load_prior` write and read such a file anywhere; a prior read for another model is refused.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError
from core.files import atomic_write
from core.latent.encoding import Progress, ShouldStop
from core.latent.map_data import encode_to_fit, encoding_cache_path, encoding_key, latent_layers
from core.latent.spread_matching import SpreadMatch, class_spreads
from core.models.latent_diffusion import LatentDenoiser, VectorDiffusion
from core.models.protocol import LatentVariableModel
from core.paths import cache_dir
from core.training.checkpoint import LoadedModel

FORMAT = "vae-explorer latent diffusion prior"
VERSION = 2   # 2: a whitening basis instead of per-dimension scales


SAMPLING = ("sample_steps", "guidance", "stochastic", "match_spread")   # how a fitted prior is sampled


@dataclass(frozen=True)
class DiffusionPriorSettings:
    """How the prior is built and trained. Defaults measured on the bundled digits VAE (bench/bench_priors.py)."""

    width: int = 256            # the denoiser MLP's width
    blocks: int = 3             # its residual blocks
    train_steps: int = 2000     # optimiser steps (batches of `batch_size` latents)
    batch_size: int = 256
    lr: float = 1e-3            # AdamW, cosine decay to 0 after a 100-step warm-up
    ema_decay: float = 0.995    # sampling uses the weights' exponential moving average
    label_dropout: float = 0.1  # trains the "no label" embedding, for classifier-free guidance
    sample_steps: int = 25      # DPM-Solver++ steps
    guidance: float = 1.0       # 1: the conditional model alone
    stochastic: bool = False    # sample with SDE-DPM-Solver++ (fresh noise each step) instead of the ODE
    top_layer: bool = False     # a hierarchical VAE: the top layer only (the layers below from their prior)
    posterior_samples: bool = False   # fit to z ~ q(z|x) drawn afresh each step (the aggregate posterior), not means
    posterior_scale: float = 1.0   # with posterior_samples: the draws' spread, a share of the posterior's own
    dropout: float = 0.0        # in the denoiser's residual blocks
    whiten: bool = True         # fit in PCA-whitened coordinates (the linear correlations removed) or per-dimension
    match_spread: bool = False   # scale each class's draws to the data's class spread (spread_matching.py)
    seed: int = 0

    def check(self) -> None:
        limits = {"width": (8, 4096), "blocks": (1, 64), "train_steps": (1, 1_000_000), "batch_size": (2, 65_536),
                  "sample_steps": (1, 1000)}
        for name, (low, high) in limits.items():
            value = getattr(self, name)
            if not low <= int(value) <= high:
                raise UserError(f"the diffusion prior's {name.replace('_', ' ')} must be {low}..{high}, not {value}")
        if not 0 < self.lr < 1 or not 0 <= self.ema_decay < 1 or not 0 <= self.label_dropout < 1:
            raise UserError("the diffusion prior needs 0 < lr < 1, 0 <= ema_decay < 1 and 0 <= label_dropout < 1")
        if not 0 <= self.dropout < 1 or not 0 <= self.posterior_scale <= 10:
            raise UserError("the diffusion prior needs 0 <= dropout < 1 and 0 <= posterior scale <= 10")
        if not 0 <= self.guidance <= 50:
            raise UserError(f"the diffusion prior's guidance must be 0..50, not {self.guidance}")

    def digest(self) -> str:
        """The settings that change the fitted weights (not how it is sampled)."""
        fitted = {k: v for k, v in asdict(self).items() if k not in SAMPLING}
        return hashlib.blake2b(json.dumps(fitted, sort_keys=True).encode(), digest_size=5).hexdigest()


class DiffusionPrior:
    """A fitted latent prior: `sample(labels, generator)` -> z (B, latent_dim) like `LatentDensity.sample`."""

    def __init__(self, process: VectorDiffusion, mean: np.ndarray, basis: np.ndarray, *, latent_dim: int,
                 settings: DiffusionPriorSettings, model_key: str, n_images: int, layer: str = "",
                 fit_seconds: float = 0.0, class_spreads: np.ndarray | None = None) -> None:
        self.process = process.eval()
        self.mean = torch.as_tensor(mean, dtype=torch.float32)
        self.basis = torch.as_tensor(basis, dtype=torch.float32)   # z = x @ basis + mean (x: the model's space)
        self.latent_dim = int(latent_dim)
        self.fitted = int(len(self.mean))   # z[:, :fitted] comes from the diffusion model, the rest from N(0, I)
        self.settings = settings
        self.model_key = model_key
        self.n_images = int(n_images)
        self.layer = layer
        self.fit_seconds = float(fit_seconds)
        self.class_spreads = class_spreads   # the fitted latents' spread per class (C,): spread_matching.py
        self._match: SpreadMatch | None = None
        self._match_lock = threading.Lock()

    @property
    def num_classes(self) -> int:
        return self.process.net.num_classes

    def describe(self) -> str:
        where = "" if self.fitted == self.latent_dim else \
            f" (top layer {self.layer}: {self.fitted} of {self.latent_dim} dimensions; the layers below from the prior)"
        s = self.settings
        guidance = "" if s.guidance == 1.0 else f", guidance {s.guidance:g}"
        matched = ", spread matched to the data's classes" if s.match_spread else ""
        coordinates = "" if s.whiten else ", per-dimension standardised"
        return (f"diffusion prior ({s.blocks}x{s.width} MLP, v-prediction, DPM-Solver++ {s.sample_steps} steps"
                f"{guidance}{matched}{coordinates}) fitted to {self.n_images} encoded training images{where}")

    @torch.no_grad()
    def sample(self, labels: torch.Tensor | np.ndarray, generator: torch.Generator | None = None, *,
               temperature: float = 1.0) -> torch.Tensor:
        """z (B, latent_dim) float32 on the CPU for `labels` (B,); every draw comes from `generator`."""
        labels = torch.as_tensor(np.asarray(labels), dtype=torch.long).reshape(-1).cpu()
        if self.num_classes > 1 and len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise UserError(f"the diffusion prior knows classes 0..{self.num_classes - 1}, not {int(labels.max())}")
        if self.num_classes == 1:
            labels = torch.zeros_like(labels)   # an unconditional VAE: one class
        noise = torch.randn(len(labels), self.latent_dim, generator=generator) * float(temperature)
        if not len(labels):
            return noise
        z = noise.clone()
        z[:, :self.fitted] = self._draw(labels, noise[:, :self.fitted], generator)
        if self.settings.match_spread:
            z[:, :self.fitted] = self.spread_match().apply(z[:, :self.fitted], labels)
        return z

    def _draw(self, labels: torch.Tensor, noise: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """The fitted dimensions of z for `labels`, from the starting `noise` (B, fitted) by the diffusion model."""
        step_noise = None
        if self.settings.stochastic:   # the step noise also comes from `generator`, on the network's device
            device = next(self.process.net.parameters()).device
            seed = int(torch.randint(0, 2 ** 62, (1,), generator=generator))
            step_noise = torch.Generator(device=device).manual_seed(seed)
        x = self.process.sample(labels, noise, steps=self.settings.sample_steps, guidance=self.settings.guidance,
                                generator=step_noise).float().cpu()
        return x @ self.basis + self.mean

    def spread_match(self) -> SpreadMatch:
        """The per-class scales onto the data's spread for this sampling configuration, estimated at first use from
        the prior's own draws (spread_matching.py)."""
        if self.class_spreads is None:
            raise UserError("this diffusion prior file keeps no class spreads (it was written before spread matching "
                            "existed): fit it again to match its spread (name a new --prior file, or leave --prior "
                            "out)")
        with self._match_lock:
            if self._match is None:
                def draw(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
                    return self._draw(labels, torch.randn(len(labels), self.fitted, generator=generator), generator)

                self._match = SpreadMatch(draw, self.class_spreads)
            return self._match

    def with_sampling(self, *, sample_steps: int | None = None, guidance: float | None = None,
                      stochastic: bool | None = None, match_spread: bool | None = None) -> DiffusionPrior:
        """The same fitted prior sampled with other steps, guidance, sampler or spread matching."""
        from dataclasses import replace

        given = {"sample_steps": sample_steps, "guidance": guidance, "stochastic": stochastic,
                 "match_spread": match_spread}
        settings = replace(self.settings, **{k: v for k, v in given.items() if v is not None})
        settings.check()
        return DiffusionPrior(self.process, self.mean.numpy(), self.basis.numpy(), latent_dim=self.latent_dim,
                              settings=settings, model_key=self.model_key, n_images=self.n_images, layer=self.layer,
                              fit_seconds=self.fit_seconds, class_spreads=self.class_spreads)

    def sampled_as(self, settings: DiffusionPriorSettings) -> DiffusionPrior:
        """This fit sampled as `settings` say (their SAMPLING fields)."""
        return self.with_sampling(**{k: getattr(settings, k) for k in SAMPLING})


# ---- fitting --------------------------------------------------------------------------------------------------------

def _top_layer(model: LatentVariableModel, top_layer: bool) -> tuple[str, int]:
    """(layer name, columns fitted): the whole code, or a hierarchical VAE's top layer."""
    layers = latent_layers(model)
    if not top_layer or len(layers) <= 1:
        return "", int(model.latent_dim)
    name, cols = layers[0]
    return name, cols.stop - cols.start


def build_process(dim: int, num_classes: int, settings: DiffusionPriorSettings) -> VectorDiffusion:
    net = LatentDenoiser(dim, max(num_classes, 1), width=settings.width, blocks=settings.blocks,
                         dropout=settings.dropout)
    return VectorDiffusion(net, label_dropout=settings.label_dropout)


def train_process(process: VectorDiffusion, x: torch.Tensor, y: torch.Tensor, settings: DiffusionPriorSettings, *,
                  progress: Progress | None = None, should_stop: ShouldStop | None = None,
                  progress_offset: int = 0, progress_total: int | None = None,
                  spread: tuple[torch.Tensor, torch.Tensor] | None = None) -> VectorDiffusion | None:
    """Fit the process to vectors x (N, dim) with labels y (N,); the EMA weights are loaded into it at the end.
    `spread` (s (N, dim), M (dim, dim)): each row is drawn afresh at every step as x + (s * eps) @ M (a posterior's
    standard deviations in latent units, mapped by the whitening M). None when stopped. Its own generator: the fit
    is the same whatever the caller's RNG state."""
    import copy

    g = torch.Generator().manual_seed(settings.seed)
    net = process.net
    ema = copy.deepcopy(net).requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=0.0)
    warmup = min(100, settings.train_steps // 10 + 1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (
        1 + np.cos(np.pi * min(s, settings.train_steps) / settings.train_steps)))
    total = progress_total or settings.train_steps
    process.train()
    batch = min(settings.batch_size, len(x))
    ema_params, net_params = list(ema.parameters()), list(net.parameters())
    for step in range(settings.train_steps):
        if should_stop is not None and should_stop():
            return None
        idx = torch.randint(len(x), (batch,), generator=g).to(x.device)
        xb = x[idx]
        if spread is not None:
            xb = xb + (spread[0][idx] * torch.randn(xb.shape, generator=g).to(xb.device)) @ spread[1]
        loss = process.loss(xb, y[idx], generator=g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net_params, 1.0)
        opt.step()
        sched.step()
        with torch.no_grad():
            decay = min(settings.ema_decay, (1 + step) / (10 + step))   # a short warm-up of the average
            torch._foreach_lerp_(ema_params, net_params, 1.0 - decay)
        if progress is not None and (step % 20 == 0 or step == settings.train_steps - 1):
            progress(progress_offset + step + 1, total)
    net.load_state_dict(ema.state_dict())
    return process.eval()


def whitening(centered: np.ndarray, extra_var: np.ndarray | None, full: bool) -> tuple[np.ndarray, np.ndarray]:
    """(to_white, basis) with x = centered @ to_white of unit covariance and centered = x @ basis: a full whitening
    (PCA; the eigenvalues floored at 1e-6 of the largest) or per-dimension standardisation. `extra_var` (dim,): the
    mean posterior variance, added to the diagonal when posterior draws are fitted."""
    if not full:
        var = centered.var(0) + (0 if extra_var is None else extra_var)
        std = np.maximum(np.sqrt(var), 1e-3)
        return np.diag(1 / std).astype(np.float32), np.diag(std).astype(np.float32)
    cov = np.atleast_2d(np.cov(centered.astype(np.float64), rowvar=False))
    if extra_var is not None:
        cov = cov + np.diag(extra_var)
    evals, evecs = np.linalg.eigh(cov)
    evals = np.maximum(evals, 1e-6 * max(float(evals.max()), 1e-12))
    return (evecs / np.sqrt(evals)).astype(np.float32), (evecs * np.sqrt(evals)).T.astype(np.float32)


def fit_to_latents(mu: np.ndarray, labels: np.ndarray, num_classes: int, settings: DiffusionPriorSettings, *,
                   latent_dim: int | None = None, model_key: str = "", layer: str = "",
                   progress: Progress | None = None, should_stop: ShouldStop | None = None,
                   progress_offset: int = 0, progress_total: int | None = None,
                   device: torch.device | str = "cpu", logvar: np.ndarray | None = None) -> DiffusionPrior | None:
    """A diffusion prior fitted to latents mu (N, d) with labels (N,) (ignored when num_classes is 0), trained on
    `device` (the VAE's). With `logvar` (N, d) and `settings.posterior_samples`, to draws from N(mu, exp(logvar))."""
    settings.check()
    started = time.perf_counter()
    mu = np.asarray(mu, dtype=np.float32)
    if mu.ndim != 2 or len(mu) < 2:
        raise UserError("the diffusion prior needs at least two encoded images to fit")
    sampled = settings.posterior_samples and logvar is not None
    spread = settings.posterior_scale * np.exp(0.5 * np.asarray(logvar, dtype=np.float32)) if sampled else None
    mean = mu.mean(0)
    to_white, basis = whitening(mu - mean, None if spread is None else (spread ** 2).mean(0), settings.whiten)
    x = torch.from_numpy((mu - mean) @ to_white).to(device)
    noise = None if spread is None else (torch.from_numpy(spread).to(device), torch.from_numpy(to_white).to(device))
    y = torch.as_tensor(labels if num_classes else np.zeros(len(mu)), dtype=torch.long).to(device)
    with torch.random.fork_rng():
        torch.manual_seed(settings.seed)
        process = build_process(mu.shape[1], num_classes, settings).to(device)
    process = train_process(process, x, y, settings, progress=progress, should_stop=should_stop,
                            progress_offset=progress_offset, progress_total=progress_total, spread=noise)
    if process is None:
        return None
    return DiffusionPrior(process, mean, basis, latent_dim=latent_dim or mu.shape[1], settings=settings,
                          model_key=model_key, n_images=len(mu), layer=layer,
                          fit_seconds=time.perf_counter() - started,
                          class_spreads=class_spreads(mu, labels, num_classes))


_CACHE: weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, DiffusionPrior]] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _weights_key(model: torch.nn.Module) -> str:
    h = hashlib.blake2b(digest_size=8)
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return f"weights-{h.hexdigest()}"


def prior_cache_path(key: str, split_name: str, split, settings: DiffusionPriorSettings) -> Path:
    """Where the fit of (model key, data, settings) is kept on disk."""
    name = encoding_cache_path(key, split_name, split).stem
    return cache_dir("latent-priors") / f"{name}-{settings.digest()}.safetensors"


def fit_diffusion_prior(model: LatentVariableModel, split, *, settings: DiffusionPriorSettings | None = None,
                        loaded: LoadedModel | None = None, split_name: str = "train", progress: Progress | None = None,
                        should_stop: ShouldStop | None = None, disk_cache: bool = True) -> DiffusionPrior | None:
    """Encode `split` (the training images), then fit the prior; None if stopped. Cached per model snapshot and data
    in memory, and (with `loaded`, the LoadedModel of `model`) on disk with its encoding."""
    settings = settings or DiffusionPriorSettings()
    settings.check()
    images = split.images
    key_of_data = (len(split), tuple(images.shape), int(images.sum()), int(split.labels.sum()), settings.digest())
    with _CACHE_LOCK:
        found = _CACHE.get(model, {}).get(key_of_data)
    if found is not None:
        return found.sampled_as(settings)
    key = encoding_key(loaded) if loaded is not None else _weights_key(model)
    path = prior_cache_path(key, split_name, split, settings) if disk_cache and loaded is not None else None
    prior = _read_cached(path, key) if path is not None else None
    if prior is not None and prior.class_spreads is None:   # a cache file from before spread matching: add them
        latents = encode_to_fit(model, loaded, split_name, split, total=len(split), progress=progress,
                                should_stop=should_stop)
        if latents is None:
            return None
        prior.class_spreads = class_spreads(latents.mu[:, :prior.fitted], latents.labels, model.num_classes)
        save_prior(prior, path)
    if prior is None:
        layer, fitted = _top_layer(model, settings.top_layer)
        total = len(split) + settings.train_steps
        latents = encode_to_fit(model, loaded, split_name, split, total=total, progress=progress,
                                should_stop=should_stop)
        if latents is None:
            return None
        prior = fit_to_latents(latents.mu[:, :fitted], latents.labels, model.num_classes, settings,
                               latent_dim=model.latent_dim, model_key=key, layer=layer, progress=progress,
                               should_stop=should_stop, progress_offset=len(split), progress_total=total,
                               device=next(model.parameters()).device, logvar=latents.logvar[:, :fitted])
        if prior is None:
            return None
        if path is not None:
            save_prior(prior, path)
    with _CACHE_LOCK:
        _CACHE.setdefault(model, {})[key_of_data] = prior
    return prior.sampled_as(settings)


def _read_cached(path: Path, key: str) -> DiffusionPrior | None:
    if not path.is_file():
        return None
    try:
        return read_prior(path, expect_key=key)
    except UserError:
        return None          # a damaged cache file is fitted again and overwritten


# ---- files ----------------------------------------------------------------------------------------------------------

def save_prior(prior: DiffusionPrior, path: str | Path) -> Path:
    """Write the prior as safetensors (EMA weights, the standardisation) with JSON metadata, atomically."""
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in prior.process.net.state_dict().items()}
    tensors["mean"], tensors["basis"] = prior.mean.contiguous(), prior.basis.contiguous()
    if prior.class_spreads is not None:
        tensors["class_spreads"] = torch.from_numpy(np.ascontiguousarray(prior.class_spreads))
    net = prior.process.net
    meta = {"format": FORMAT, "version": str(VERSION), "model_key": prior.model_key,
            "settings": json.dumps(asdict(prior.settings)), "latent_dim": str(prior.latent_dim),
            "num_classes": str(net.num_classes), "n_images": str(prior.n_images), "layer": prior.layer,
            "fit_seconds": f"{prior.fit_seconds:.3f}"}
    return atomic_write(Path(path), lambda tmp: save_file(tensors, str(tmp), metadata=meta))


def read_prior(path: str | Path, *, expect_key: str | None = None) -> DiffusionPrior:
    """A prior written by `save_prior`; UserError when the file is not one, or (with `expect_key`) when it was fitted
    to another model."""
    from safetensors import SafetensorError
    from safetensors.torch import safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"no diffusion prior file at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise UserError(f"{path} is not a readable safetensors file ({e})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a diffusion prior (a model checkpoint? give it as the CHECKPOINT)")
    if meta.get("version") != str(VERSION):
        raise UserError(f"the diffusion prior {path.name} was written by another version of this program; fit it again")
    if expect_key is not None and meta.get("model_key") != expect_key:
        raise UserError(f"the diffusion prior {path.name} was fitted to another model ({meta.get('model_key')}), "
                        f"not this checkpoint ({expect_key}); fit one to this model (drop --prior or name a new file)")
    try:
        known = {f.name for f in fields(DiffusionPriorSettings)}
        settings = DiffusionPriorSettings(**{k: v for k, v in json.loads(meta["settings"]).items() if k in known})
        settings.check()
        mean, basis = tensors.pop("mean"), tensors.pop("basis")
        spreads = tensors["class_spreads"].numpy() if "class_spreads" in tensors else None
        state = {k[len("net."):]: v for k, v in tensors.items() if k.startswith("net.")}
        process = build_process(len(mean), int(meta["num_classes"]), settings)
        process.net.load_state_dict(state)
        return DiffusionPrior(process, mean.numpy(), basis.numpy(), latent_dim=int(meta["latent_dim"]),
                              settings=settings, model_key=meta.get("model_key", ""), n_images=int(meta["n_images"]),
                              layer=meta.get("layer", ""), fit_seconds=float(meta.get("fit_seconds", 0)),
                              class_spreads=spreads)
    except (KeyError, ValueError, TypeError, RuntimeError, UserError) as e:
        raise UserError(f"the diffusion prior {path} is damaged or from another version ({e})") from None
