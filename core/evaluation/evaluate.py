"""How good is a model? ELBO terms, bits/dim, IWAE NLL, SSIM/PSNR, active units, conditional accuracy, FID-style.

`evaluate(loaded, dataset)` is what `vae-explorer eval` prints. It follows the house rule for long work: it takes
`progress(done, total)` and `should_stop()` callables, never prints, and returns None when stopped.

Conditional accuracy and the FID-style score need a judge that did not see the model: a small CNN trained on the
real training images (`core/evaluation/judge.py`), cached per dataset so it is trained once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.datasets import Dataset, DatasetMeta, Split
from core.errors import UserError
from core.evaluation.codes import code_terms
from core.evaluation.diversity import DEFAULT_K, precision_recall
from core.evaluation.frechet import fid_like
from core.evaluation.holes import DEFAULT_HOLE_K, hole_score
from core.evaluation.image_quality import ssim_psnr_per_image
from core.evaluation.judge import Classifier, get_classifier
from core.evaluation.sharpness import sharpness_ratio
from core.images import as_float
from core.models.protocol import DenoisingModel, GenerativeModel, LatentVariableModel, is_vqvae
from core.training.checkpoint import LoadedModel

Progress = Callable[[int, int], None]
ShouldStop = Callable[[], bool]
# Where a VAE's latents come from other than its prior: labels (B,) on the CPU and a generator -> z (B, latent_dim).
LatentSampler = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]

# Burda et al. (2016): a latent unit is active when the variance over the data of its posterior mean exceeds 0.01.
ACTIVE_UNIT_THRESHOLD = 0.01


# ---------------------------------------------------------------------------------------------------------------------
# Class-conditional samples and conditional accuracy


def _model_device(model: GenerativeModel) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


@torch.no_grad()
def class_samples(model: GenerativeModel, num_classes: int, n_per_class: int, generator: torch.Generator | None,
                  *, chunk: int = 500, sample_kw: dict[str, Any] | None = None, progress: Progress | None = None,
                  should_stop: ShouldStop | None = None, latent_sampler: LatentSampler | None = None,
                  latents_out: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """`n_per_class` samples of each class, float [0, 1] on the CPU, with their labels; None when stopped.

    `latent_sampler` (a VAE): decode z drawn by it (e.g. a density fitted to the encoded data) instead of the prior.
    `latents_out` (a VAE): gets the decoded z, chunk by chunk (the prior's drawn here exactly as `model.sample` draws
    them, so the images are the same either way)."""
    labels = torch.arange(num_classes).repeat_interleave(n_per_class)
    device = _model_device(model)
    out = []
    total = math.ceil(len(labels) / chunk)
    for i, start in enumerate(range(0, len(labels), chunk)):
        if should_stop is not None and should_stop():
            return None
        y = labels[start:start + chunk].to(device)
        kw = dict(sample_kw or {})
        if latent_sampler is not None:
            kw["z"] = latent_sampler(labels[start:start + chunk], generator)
        elif latents_out is not None and model.kind == "vae" and generator is not None:
            z = torch.randn(len(y), model.latent_dim, generator=generator, device=generator.device)
            kw["z"] = z * kw.pop("temperature", 1.0)
        if latents_out is not None and "z" in kw:
            latents_out.append(torch.as_tensor(kw["z"]).float().cpu())
        out.append(model.sample(y, generator=generator, **kw).float().clamp(0, 1).cpu())
        if progress is not None:
            progress(i + 1, total)
    return torch.cat(out), labels


def conditional_accuracy(model: GenerativeModel, classifier: Classifier, n_per_class: int,
                         generator: torch.Generator | None = None, **sample_kw: Any) -> float:
    """Share of class-conditional samples that the classifier assigns to the class they were asked for."""
    if n_per_class < 1:
        raise ValueError("n_per_class must be at least 1")
    result = class_samples(model, model.num_classes or classifier.num_classes, n_per_class, generator,
                           sample_kw=sample_kw)
    assert result is not None
    images, labels = result
    return float((classifier.predict(images) == labels).float().mean())


def active_units(mu: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> tuple[int, np.ndarray]:
    """Number of active latent units and the per-unit variance over the data of the posterior means (N, D)."""
    var = mu.double().var(dim=0, unbiased=True).cpu().numpy()
    return int((var > threshold).sum()), var


# ---------------------------------------------------------------------------------------------------------------------
# evaluate()


def _gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    return -0.5 * (((z - mu) ** 2) * torch.exp(-logvar) + logvar + math.log(2 * math.pi)).sum(-1)


def _check_compatible(loaded: LoadedModel, dataset: Dataset) -> None:
    a, b = loaded.meta, dataset.meta
    if (a.channels, a.image_size, a.num_classes) != (b.channels, b.image_size, b.num_classes):
        raise UserError(
            f"the model was trained on {a.name} ({a.num_classes} classes, {a.channels}x{a.image_size}x{a.image_size}) "
            f"but the data is {b.name} ({b.num_classes} classes, {b.channels}x{b.image_size}x{b.image_size}); "
            "evaluate it on the data it was trained on")


def evaluate(loaded: LoadedModel, dataset: Dataset, split: str = "test", *, progress: Progress | None = None,
             should_stop: ShouldStop | None = None, iwae_k: int = 64, n_per_class: int | None = None,
             batch_size: int = 256, seed: int = 0, classifier: Classifier | None = None,
             sample_kw: dict[str, Any] | None = None, fid: str = "auto",
             latent_samplers: dict[str, LatentSampler | None] | None = None,
             hole_k: int = DEFAULT_HOLE_K) -> dict[str, Any] | None:
    """Evaluate a loaded checkpoint on one split; a flat, JSON-ready dict. None when `should_stop()` became true.

    VAE: ELBO, reconstruction and KL in nats per image, bits/dim, IWAE NLL estimate with `iwae_k` importance samples
    (0 = skip), SSIM/PSNR of the reconstructions (posterior mean), active latent units, conditional accuracy and the
    FID-style score. Diffusion: the training loss on the split, conditional accuracy and the FID-style score.
    `n_per_class` samples per class judge the generator (default 100; 30 for diffusion on the CPU, where sampling
    is slow). Repeatable: every random draw comes from `seed`, and the caller's RNG state is left as it was.
    `fid`: "auto" adds the standard Inception FID when its weights are here (never downloads), "inception" requires it
    (UserError saying what is missing), "judge" skips it; `fid_source` says which Fréchet score the result holds.
    Every source of samples also gets precision and recall (`diversity.py`) and sharpness (`sharpness.py`).
    `latent_samplers` (a VAE): name -> where z comes from (None: the prior), in order; the first source's sample metrics
    are the unprefixed keys (its name in `samples_from`), each other's carry its name (`density_fid_like` ...).
    A VAE's sources also get the hole score (holes.py, overall and per class) against the split's posterior means,
    each latent's ball being its `hole_k`-th neighbour distance.
    """
    _check_compatible(loaded, dataset)
    inception = _inception_choice(fid)
    model, meta = loaded.model, dataset.meta
    kind = model.kind
    data = dataset.split(split)
    if len(data) == 0:
        raise UserError(f"the {split} split of {meta.name} is empty; nothing to evaluate")
    device = _model_device(model)
    if n_per_class is None:
        n_per_class = 100 if kind in ("vae", "vqvae") or device.type != "cpu" else 30
    conditional = model.num_classes > 0
    n_batches = math.ceil(len(data) / batch_size)
    n_chunks = math.ceil(n_per_class * max(meta.num_classes, 1) / 500)
    sources = dict(latent_samplers or {"prior": None})
    if kind != "vae" and any(sources.values()):
        raise UserError(f"only a VAE samples from latents; this checkpoint is a {kind} model")
    (first_source, first_sampler), *other_sources = sources.items()
    # Progress units: one per data batch (twice with IWAE), the judge, one per sample chunk per source, the features.
    ticker = _Ticker(n_batches * (2 if kind == "vae" and iwae_k > 0 else 1) + 1 + (n_chunks + 1) * len(sources),
                     progress, should_stop)
    result: dict[str, Any] = {"model_kind": kind, "dataset": meta.name, "split": split, "n_images": len(data),
                              "checkpoint": str(loaded.path) if loaded.path else None, "step": loaded.step,
                              "epoch": loaded.epoch}
    # The judge trains with gradients and its own seed: before no_grad and before our RNG fork.
    judge = classifier or judge_for(loaded, dataset)
    model.eval()
    # model.loss draws its noise (reparameterisation, diffusion timesteps) from the global RNG: fork and seed it so the
    # numbers are repeatable and the caller's RNG stream is untouched.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.no_grad():
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        split_latents: list[torch.Tensor] = []   # the split's posterior means: the hole score's data
        if is_vqvae(model):
            ok = code_terms(model, data, batch_size, device, conditional, ticker.tick, ticker.stopped, result)
        elif kind == "vae":
            ok = _vae_terms(loaded, data, meta, batch_size, device, gen, conditional, iwae_k, ticker, result,
                            split_latents)
        else:
            ok = _diffusion_loss(model, data, batch_size, device, conditional, ticker, result)
        if not ok or ticker.stopped():
            return None
        if is_vqvae(model) and not model.has_prior:   # a first stage: nothing draws its samples yet
            return result
        ticker.tick()
        drawn: list[torch.Tensor] = []
        samples = class_samples(model, max(meta.num_classes, 1), n_per_class, gen, sample_kw=sample_kw,
                                progress=lambda i, t: ticker.tick(), should_stop=should_stop,
                                latent_sampler=first_sampler, latents_out=drawn)
        if samples is None:
            return None
        images, labels = samples
        data_latents = None
        if split_latents:
            data_latents = (torch.cat(split_latents).numpy(), data.labels.cpu().numpy() if conditional else None)
            if drawn:
                result.update(latent_holes(data_latents, torch.cat(drawn).numpy(),
                                           labels.numpy() if conditional else None, k=hole_k))
                result["hole_score_note"] = (f"share of sampled z whose nearest {split}-split latent of their class is "
                                             f"farther than that latent's own {_ordinal(result['hole_k'])} neighbour")
        if conditional:
            result["conditional_accuracy"] = float((judge.predict(images) == labels).float().mean())
        result["n_samples"] = len(images)
        result["fid_like"] = fid_like(judge.features(as_float(data.images)), judge.features(images))
        result["fid_like_note"] = ("Frechet distance in the features of our small per-dataset classifier, not "
                                   "Inception: comparable only between models evaluated on the same dataset")
        if inception.available:
            from core.evaluation.inception import inception_fid

            result["fid"] = inception_fid(as_float(data.images), images, weights=inception.weights, device=device)
            result["fid_source"] = "inception"
        else:
            result["fid_source"] = "judge classifier"
            result["fid_note"] = f"no Inception FID: {inception.reason}"
        result["classifier_test_accuracy"] = judge.test_accuracy
        result["samples_from"] = first_source
        result.update(diversity_and_sharpness(judge, data.images, images, seed=seed))
        ticker.tick()
        for name, sampler in other_sources:
            more = source_metrics(model, judge, data.images, max(meta.num_classes, 1), n_per_class, seed=seed,
                                  sample_kw=sample_kw, latent_sampler=sampler, progress=lambda i, t: ticker.tick(),
                                  should_stop=should_stop, data_latents=data_latents, hole_k=hole_k)
            if more is None:
                return None
            result.update({f"{name}_{key}": value for key, value in more.items()})
            ticker.tick()
    return result


def diversity_and_sharpness(judge: Classifier, real: torch.Tensor, generated: torch.Tensor, *,
                            seed: int = 0) -> dict[str, float]:
    """Precision and recall in the judge's features (k-NN manifolds, k = 3) and sharpness (1.0 = as sharp as `real`)."""
    precision, recall = precision_recall(judge.features(real), judge.features(generated), k=DEFAULT_K, seed=seed)
    return {"precision": precision, "recall": recall, "sharpness": sharpness_ratio(generated, real)}


def source_metrics(model: GenerativeModel, judge: Classifier, real: torch.Tensor, num_classes: int,
                   n_per_class: int, *, seed: int = 0, sample_kw: dict[str, Any] | None = None,
                   latent_sampler: LatentSampler | None = None, progress: Progress | None = None,
                   should_stop: ShouldStop | None = None,
                   data_latents: tuple[np.ndarray, np.ndarray | None] | None = None,
                   hole_k: int = DEFAULT_HOLE_K) -> dict[str, Any] | None:
    """The sample metrics of one source of latents: conditional accuracy, the Fréchet score (judge), precision,
    recall, sharpness; None when stopped. Its own generator seeded with `seed`: sources compare on equal draws.
    With `data_latents` (posterior means (N, D) and their labels, None for one class) of a VAE, also the hole score
    (holes.py, k = `hole_k`) of the decoded z."""
    gen = torch.Generator().manual_seed(seed)
    drawn: list[torch.Tensor] = []
    samples = class_samples(model, num_classes, n_per_class, gen, sample_kw=sample_kw, progress=progress,
                            should_stop=should_stop, latent_sampler=latent_sampler,
                            latents_out=drawn if data_latents is not None else None)
    if samples is None:
        return None
    images, labels = samples
    out: dict[str, Any] = {}
    if model.num_classes > 0:
        out["conditional_accuracy"] = float((judge.predict(images) == labels).float().mean())
    out["fid_like"] = fid_like(judge.features(as_float(real)), judge.features(images))
    out.update(diversity_and_sharpness(judge, real, images, seed=seed))
    if data_latents is not None and drawn:
        out.update(latent_holes(data_latents, torch.cat(drawn).numpy(), labels.numpy() if model.num_classes else None,
                                k=hole_k))
    return out


def _ordinal(n: int) -> str:
    """1st, 2nd, 3rd, 4th, 11th, 21st ..."""
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def latent_holes(data_latents: tuple[np.ndarray, np.ndarray | None], z: np.ndarray,
                 labels: np.ndarray | None, *, k: int = DEFAULT_HOLE_K) -> dict[str, Any]:
    """hole_score, hole_score_per_class and hole_k of sampled z (holes.py) against the data's latents."""
    score = hole_score(data_latents[0], data_latents[1], z, labels, k=k)
    return {**score.as_dict(), "hole_k": score.k}


def _inception_choice(fid: str) -> Any:
    from core.evaluation.inception import InceptionStatus, inception_status

    if fid not in ("auto", "inception", "judge"):
        raise UserError(f"unknown Fréchet score {fid!r}; choose auto, inception or judge")
    if fid == "judge":
        return InceptionStatus(False, Path(), "not asked for (the classifier's Fréchet score was chosen)")
    status = inception_status()
    if fid == "inception" and not status.available:
        raise UserError(f"cannot compute the Inception FID: {status.reason}")
    return status


def judge_for(loaded: LoadedModel, dataset: Dataset, *, progress: Progress | None = None) -> Classifier:
    """The classifier that judges `loaded`'s samples: trained on all the training images of its classes.

    A model trained on a per-class subset (the reference study's "100 images per class") is still judged by a
    classifier that saw every training image of those classes: a better judge, and one shared by all subset sizes.
    """
    from core.config import with_overrides
    from core.data.datasets import load_dataset

    data_cfg = loaded.config.data
    if data_cfg.per_class > 0 and dataset.meta == loaded.meta:
        full = load_dataset(with_overrides(data_cfg, per_class=0), dataset.train.images.device)
        if full.meta == dataset.meta:
            return get_classifier(full.meta, full, progress=progress)
    return get_classifier(dataset.meta, dataset, progress=progress)


class _Ticker:
    """Counts progress units and answers should_stop."""

    def __init__(self, total: int, progress: Progress | None, should_stop: ShouldStop | None) -> None:
        self.total, self.done, self.progress, self.should_stop = total, 0, progress, should_stop

    def tick(self) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(min(self.done, self.total), self.total)

    def stopped(self) -> bool:
        return self.should_stop is not None and bool(self.should_stop())


def _vae_terms(loaded: LoadedModel, data: Split, meta: DatasetMeta, batch_size: int, device: torch.device,
               gen: torch.Generator, conditional: bool, iwae_k: int, ticker: _Ticker, result: dict[str, Any],
               latents_out: list[torch.Tensor]) -> bool:
    """ELBO terms, bits/dim, SSIM/PSNR, active units and IWAE into `result`, the posterior means into
    `latents_out`; False when stopped."""
    model = loaded.model
    dims = meta.channels * meta.image_size * meta.image_size
    sums = {"elbo": 0.0, "recon": 0.0, "kl": 0.0}
    ssims, psnrs, mus = [], [], []
    for x8, y in data.batches(batch_size, shuffle=False):
        if ticker.stopped():
            return False
        x, y_in = as_float(x8).to(device), (y.to(device) if conditional else None)
        out = model.loss(x, y_in)
        for k in sums:
            sums[k] += float(out[k]) * len(x)
        s, p = ssim_psnr_per_image(model.reconstruct(x, y_in), x)
        ssims.append(s)
        psnrs.append(p)
        mus.append(model.encode(x, y_in)[0].float().cpu())
        ticker.tick()
    n = len(data)
    elbo = sums["elbo"] / n
    result.update(elbo=elbo, recon=sums["recon"] / n, kl=sums["kl"] / n, bits_per_dim=-elbo / (dims * math.log(2)))
    likelihood = loaded.config.model.likelihood
    if likelihood != "discretized":
        result["bits_per_dim_note"] = (f"{likelihood} likelihood on [0,1] pixels: bits/dim is not comparable to "
                                       "8-bit (discretized) numbers in the literature")
    ssim_all, psnr_all = np.concatenate(ssims), np.concatenate(psnrs)
    result.update(ssim=float(ssim_all.mean()), ssim_std=float(ssim_all.std()), psnr=float(psnr_all.mean()),
                  psnr_std=float(psnr_all.std()))
    latents_out.extend(mus)
    n_active, variances = active_units(torch.cat(mus))
    result.update(active_units=n_active, latent_dim=int(variances.shape[0]))
    if iwae_k > 0:
        nll = _iwae_nll(model, data, iwae_k, batch_size, device, gen, conditional, ticker.tick, ticker.stopped)
        if nll is None:
            return False
        result.update(iwae_nll=nll, iwae_k=iwae_k, iwae_bits_per_dim=nll / (dims * math.log(2)))
    return True


def _diffusion_loss(model: DenoisingModel, data: Split, batch_size: int, device: torch.device, conditional: bool,
                    ticker: _Ticker, result: dict[str, Any]) -> bool:
    """The denoising loss on the split (its own training objective) into `result`; False when stopped."""
    loss_sum = 0.0
    for x8, y in data.batches(batch_size, shuffle=False):
        if ticker.stopped():
            return False
        x = as_float(x8).to(device)
        loss_sum += float(model.loss(x, y.to(device) if conditional else None)["loss"]) * len(x)
        ticker.tick()
    result["loss"] = loss_sum / len(data)
    return True


def _iwae_nll(model: LatentVariableModel, data: Split, k: int, batch_size: int, device: torch.device,
              gen: torch.Generator, conditional: bool, tick: Callable[[], None], stopped: ShouldStop) -> float | None:
    """IWAE estimate of -log p(x) in nats per image (Burda et al. 2016) with k importance samples from q(z|x).

    log p(x) >= log mean_k p(x|z_k) p(z_k) / q(z_k|x); it tightens as k grows and equals the ELBO at k = 1.
    Returns None when stopped.
    """
    total, n = 0.0, 0
    # Decode at most ~4096 images at once: k copies of a batch.
    per_call = max(1, 4096 // k)
    for x8, y in data.batches(batch_size, shuffle=False):
        for start in range(0, len(x8), per_call):
            if stopped():
                return None
            x = as_float(x8[start:start + per_call]).to(device)
            yy = y[start:start + per_call].to(device) if conditional else None
            mu, logvar = model.encode(x, yy)
            std = torch.exp(0.5 * logvar)
            eps = torch.randn((k, *mu.shape), generator=gen).to(device)
            z = mu[None] + std[None] * eps                                   # (k, B, D)
            log_q = _gaussian_log_prob(z, mu[None], logvar[None])            # (k, B)
            log_pz = _gaussian_log_prob(z, torch.zeros_like(z), torch.zeros_like(z))
            xk = x[None].expand(k, *x.shape).reshape(-1, *x.shape[1:])
            yk = yy[None].expand(k, *yy.shape).reshape(-1) if yy is not None else None
            log_px = model.log_likelihood(xk, z.reshape(-1, z.shape[-1]), yk).reshape(k, -1)
            log_w = (log_px + log_pz - log_q).double()
            log_px_est = torch.logsumexp(log_w, dim=0) - math.log(k)
            total += float(-log_px_est.sum())
            n += len(x)
        tick()
    return total / n
