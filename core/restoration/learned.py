"""The learned restorers: the VAE (encode/decode, and MAP latent refinement) and the diffusion model (SDEdit,
RePaint for masks, a data-consistency step for blur, darkening and downsampling).

All restorers take corrupted [0, 1] images (B, C, H, W) and return restored [0, 1] images of the same shape; for
mask corruptions (mask 1 = missing) every restorer returns the known pixels unchanged. Labels are never given to a
restorer by default: a real corrupted image comes without one, so the VAE tries every label and keeps the one that
explains the observed pixels best, and the diffusion model runs unconditionally ("no label").
The corruptions live in `corruptions.py`, the classical baselines in `classical.py`, and the benchmark that runs
them all in `benchmark.py`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from core.models.protocol import DenoisingModel, DiscreteCodeModel, LatentVariableModel
from core.restoration.corruptions import check_name, downsample_factor, forward_operator, keep_known, observation

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None



# ---------------------------------------------------------------------------------------------------------- VAE
def _labels_to_try(vae: LatentVariableModel, b: int, device: torch.device) -> list[torch.Tensor | None]:
    k = vae.num_classes
    return [torch.full((b,), c, dtype=torch.long, device=device) for c in range(k)] if k else [None]


def _observed_error(pred: torch.Tensor, x_c: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per-image mean squared error between pred and the corrupted image, over the known pixels only."""
    d = (pred - x_c).pow(2)
    if mask is None:
        return d.flatten(1).mean(1)
    known = (1 - mask).expand_as(d)
    return (d * known).flatten(1).sum(1) / known.flatten(1).sum(1).clamp_min(1)


@torch.no_grad()
def restore_vae(vae: LatentVariableModel, x_corrupted: torch.Tensor, mask: torch.Tensor | None = None,
                labels: torch.Tensor | None = None) -> torch.Tensor:
    """Encode the corrupted image and decode the posterior mean; without labels, every label is tried and the one
    whose reconstruction best matches the known pixels is kept."""
    device = next(vae.parameters()).device
    x = x_corrupted.to(device).float()
    tries = [labels.to(device)] if labels is not None else _labels_to_try(vae, x.shape[0], device)
    best, best_err = None, None
    for y in tries:
        mu, _ = vae.encode(x, y)
        out = vae.decode(mu, y)
        err = _observed_error(out, x, mask.to(device) if mask is not None else None)
        if best is None:
            best, best_err = out, err
        else:
            better = err < best_err
            best = torch.where(better.view(-1, 1, 1, 1), out, best)
            best_err = torch.minimum(err, best_err)
    return keep_known(best, x, mask).cpu()


@torch.no_grad()
def restore_codes(model: DiscreteCodeModel, x_corrupted: torch.Tensor, mask: torch.Tensor | None = None, *,
                  rounds: int = 3) -> torch.Tensor:
    """A VQ-VAE as a restorer: the image through its nearest codes (noise and small defects that no code holds are
    dropped; no label needed). With a mask, `rounds` times: the missing pixels are filled with the decode and the
    image is coded again, so the codes around a hole settle on what the known pixels say."""
    device = next(model.parameters()).device
    x = x_corrupted.to(device).float()
    m = mask.to(device) if mask is not None else None
    out = x
    for _ in range(rounds if m is not None else 1):
        out = keep_known(model.decode_codes(model.encode_codes(out)), x, m)
    return out.cpu()


def restore_vae_refined(vae: LatentVariableModel, x_corrupted: torch.Tensor, name: str, strength: float,
                        mask: torch.Tensor | None = None, *, labels: torch.Tensor | None = None, steps: int = 100,
                        lr: float = 0.05, progress: Progress = None,
                        should_stop: ShouldStop = None) -> torch.Tensor | None:
    """MAP latent refinement: optimise z (one z per candidate label) with Adam to minimise
    |A(decode(z, y)) - observation|^2 / (2 sigma^2) + |z|^2 / 2 over the known pixels, A being the corruption's
    forward operator (blur, darkening, downsampling; identity otherwise) and sigma the noise level (the Gaussian
    noise strength; 0.05 for the noise-free corruptions). Salt-and-pepper uses an L1 data term (outliers). Starts
    from the encoder's mean; without labels, all labels are refined at once and the lowest final loss wins.
    Returns None when stopped."""
    check_name(name)
    device = next(vae.parameters()).device
    x = x_corrupted.to(device).float()
    b = x.shape[0]
    m = mask.to(device).float() if mask is not None else None
    op = forward_operator(name, strength)
    robust = name == "salt-pepper"
    sigma = max(float(strength), 0.05) if name == "gaussian" else (0.1 if robust else 0.05)
    tries = [labels.to(device)] if labels is not None else _labels_to_try(vae, b, device)
    k = len(tries)
    y = None if tries[0] is None else torch.cat(tries)            # (k*b,): label c for images 0..b-1, then c+1 ...
    xs = x.repeat(k, 1, 1, 1)
    ms = m.repeat(k, 1, 1, 1) if m is not None else None
    target = observation(name, xs)                                # A(clean) = target: what A(decoded) must match
    with torch.no_grad():
        z0, _ = vae.encode(xs, y)
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    for i in range(steps):
        if should_stop is not None and should_stop():
            return None
        with torch.enable_grad():
            loss = _refine_loss(vae, z, y, target, op, ms, robust, sigma)
            # Gradients for z only: the (shared, possibly in use elsewhere) model's .grad stays untouched.
            (z.grad,) = torch.autograd.grad(loss.sum(), [z])
        opt.step()
        if progress is not None:
            progress(i + 1, steps)
    with torch.no_grad():
        loss = _refine_loss(vae, z, y, target, op, ms, robust, sigma).view(k, b)
        out = vae.decode(z, y).view(k, b, *x.shape[1:])
        best = loss.argmin(0)
        out = out[best, torch.arange(b, device=device)]
    return keep_known(out, x, m).cpu()


def _refine_loss(vae: LatentVariableModel, z: torch.Tensor, y: torch.Tensor | None, target: torch.Tensor, op: Callable,
                 mask: torch.Tensor | None, robust: bool, sigma: float) -> torch.Tensor:
    """Per-latent negative log posterior (up to constants), summed over the known pixels."""
    pred = vae.decode(z, y)
    d = op(pred) - target
    if mask is not None:
        d = d * (1 - mask).expand_as(d)      # masks come with the identity operator: same shape
    data = (d.abs() / sigma) if robust else d.pow(2) / (2 * sigma ** 2)
    return data.flatten(1).sum(1) + 0.5 * z.pow(2).sum(1)


# ---------------------------------------------------------------------------------------------------- diffusion
def diffusion_strength(model: DenoisingModel, name: str, strength: float) -> float:
    """The SDEdit strength (fraction of the chain) that suits a corruption: for Gaussian noise, the timestep whose
    noise level matches the corruption's sigma (so the added noise drowns the observed noise, and no more);
    masks regenerate from pure noise (RePaint keeps the known pixels)."""
    if name in ("mask-box", "mask-strokes"):
        return 1.0
    if name == "gaussian":
        target = 2 * float(strength)        # sigma in [-1, 1] units
        ab = model.alphas_cumprod
        level = ((1 - ab) / ab).sqrt()
        t = int((level < target).sum())     # the first timestep at least as noisy as the observation
        return min(1.0, t / (model.cfg.timesteps - 1))
    return {"salt-pepper": 0.5, "blur": 0.4, "low-light": 0.5, "downsample-x2": 0.35, "downsample-x4": 0.55}[name]


CONSISTENCY_ITERS = 10    # gradient steps on the data term per diffusion step


def data_consistency(name: str, strength: float, x_corrupted: torch.Tensor, *,
                     iters: int = CONSISTENCY_ITERS) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """For the corruptions with a known deterministic forward operator A (blur, low light, downsampling), a function
    that moves a clean-image estimate x0 (in [-1, 1]) towards explaining the observation y: `iters` gradient steps
    on |A(x) - y|^2 / 2 starting at x0 (the data step of plug-and-play diffusion restoration, as in DiffPIR). None
    for the corruptions whose observation is the image itself (noise, masks: SDEdit and RePaint handle those)."""
    if name not in ("blur", "low-light") and not name.startswith("downsample"):
        return None
    op = forward_operator(name, strength)
    y = observation(name, x_corrupted.float())
    # Step sizes near 1 / |A|^2: the mean over f x f pixels has |A|^2 = 1/f^2 (one step then projects exactly);
    # a blur's kernel sums to 1; the darkening's slope is below 1.
    step = float(downsample_factor(name) ** 2) if name.startswith("downsample") else (1.0 if name == "blur" else 2.0)

    def correct(x0: torch.Tensor) -> torch.Tensor:
        target = y.to(x0.device)
        with torch.enable_grad():
            u = ((x0.detach().float() + 1) / 2).requires_grad_(True)
            for _ in range(iters):
                (g,) = torch.autograd.grad(0.5 * (op(u) - target).pow(2).sum(), [u])
                u = (u - step * g).clamp(0, 1).detach().requires_grad_(True)
        return (u.detach() * 2 - 1).to(x0.dtype)

    return correct


@torch.no_grad()
def restore_diffusion(model: DenoisingModel, x_corrupted: torch.Tensor, name: str, strength: float,
                      mask: torch.Tensor | None = None, *, sdedit_strength: float | None = None, samples: int = 1,
                      steps: int = 100, sampler: str = "ddpm", labels: torch.Tensor | None = None,
                      generator: torch.Generator | None = None, progress: Progress = None,
                      should_stop: ShouldStop = None, consistency: bool = True) -> torch.Tensor | None:
    """SDEdit (RePaint for masks) with the strength from `diffusion_strength` unless given; for blur, low light and
    downsampling (with `consistency`), every step's clean-image estimate is also pulled towards explaining the
    observation (`data_consistency`). `samples` > 1 averages
    that many independent restorations (an estimate of the posterior mean, which scores higher PSNR than any one
    sample, at `samples` times the cost). Returns None when stopped."""
    check_name(name)
    s = diffusion_strength(model, name, strength) if sdedit_strength is None else float(sdedit_strength)
    b = x_corrupted.shape[0]
    xs = x_corrupted.repeat(samples, 1, 1, 1)
    ms = mask.repeat(samples, 1, 1, 1) if mask is not None else None
    ys = labels.repeat(samples) if labels is not None else None
    dc = data_consistency(name, strength, xs) if consistency else None
    out = model.restore(xs, strength=s, mask=ms, labels=ys, steps=steps, sampler=sampler, generator=generator,
                        progress=progress, should_stop=should_stop, consistency=dc)
    if out is None:
        return None
    out = out.view(samples, b, *x_corrupted.shape[1:]).mean(0)
    return keep_known(out, x_corrupted, mask).cpu()


