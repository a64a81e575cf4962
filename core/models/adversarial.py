"""The adversarial half of a VAE-GAN: a small patch discriminator, its hinge loss, and the generator's adversarial
term with VQGAN's adaptive weight (Esser et al. 2021).

The VAE owns the discriminator (`ConditionalVAE.discriminator`, present only when `adversarial_weight > 0`), so it
moves, saves and loads with the model; the VAE's `configure_optimizers` gives it an optimiser of its own
(`gan_optimizers`), which the trainer steps like any other. Its weights are never averaged (EMA) and never used to
sample: it only shapes the decoder's training.

The generator term: L = L_rec + beta * KL + w * lambda * L_adv with L_adv = -mean D(x_hat) (hinge generator loss) and
lambda = |grad_last L_rec| / (|grad_last L_adv| + 1e-4), clamped, both gradients taken at the decoder's last layer.
lambda puts the adversarial gradient on the scale of the reconstruction gradient whatever the likelihood's units
(our reconstruction term is in nats per image, hundreds of times a mean-pixel loss), so `w` means the same for every
dataset.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from core.config import TrainConfig
from core.models.optimizers import ExtraObjective, Optimizers, adam

MAX_ADAPTIVE_WEIGHT = 1e4   # VQGAN's clamp: an all-but-vanishing adversarial gradient must not blow the weight up


class PatchDiscriminator(nn.Module):
    """A few stride-2 convolutions with spectral norm, ending in one real/fake logit per patch (PatchGAN).

    Spectral norm keeps the critic 1-Lipschitz-ish, which with the hinge loss keeps a small GAN stable at the VAE's
    learning rate without a separate schedule. Input: images in [0, 1], (B, C, H, W); output (B, 1, h, w) logits.
    """

    def __init__(self, channels: int, width: int, *, downsamplings: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in = channels
        for i in range(downsamplings):
            c_out = width * 2 ** i
            layers += [spectral_norm(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            c_in = c_out
        layers += [spectral_norm(nn.Conv2d(c_in, c_in, 3, padding=1)), nn.LeakyReLU(0.2),
                   spectral_norm(nn.Conv2d(c_in, 1, 3, padding=1))]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2 - 1)


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """The generator's pass through the discriminator: gradients reach the images, not the discriminator's weights
    (its optimiser alone moves them, from its own loss)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


def generator_terms(discriminator: nn.Module, fake: Tensor, recon_loss: Tensor, last_layer: Tensor, *,
                    weight: float, active: bool) -> dict[str, Tensor]:
    """The generator's adversarial term for reconstructions `fake` (mean images with their graph).

    Returns "term" (to add to the loss), "g_adv" (the hinge generator loss, -mean logit of the fakes) and
    "adv_weight" (w * lambda, the adaptive weight actually applied). Inactive (before `adversarial_start`) or without
    gradients (validation): all zeros and no discriminator pass, so the numbers logged say it was off.
    """
    zero = torch.zeros((), device=fake.device)
    if not active or not torch.is_grad_enabled():
        return {"term": zero, "g_adv": zero, "adv_weight": zero}
    with frozen(discriminator):
        g_adv = -discriminator(fake.float()).mean()
    grad_rec = torch.autograd.grad(recon_loss, last_layer, retain_graph=True)[0]
    grad_adv = torch.autograd.grad(g_adv, last_layer, retain_graph=True)[0]
    lam = (grad_rec.norm() / (grad_adv.norm() + 1e-4)).clamp(0.0, MAX_ADAPTIVE_WEIGHT).detach()
    applied = weight * lam
    return {"term": applied * g_adv, "g_adv": g_adv.detach(), "adv_weight": applied}


def discriminator_hinge_loss(discriminator: nn.Module, real: Tensor, fake: Tensor, *, active: bool
                             ) -> dict[str, Tensor]:
    """The discriminator's hinge loss: mean relu(1 - D(real)) + mean relu(1 + D(fake)), with the mean logits.

    Inactive: zeros that carry no gradient (the trainer then leaves the discriminator's optimiser alone)."""
    if not active:
        zero = torch.zeros((), device=real.device)
        return {"d_loss": zero, "d_real": zero, "d_fake": zero}
    logits_real = discriminator(real.float())
    logits_fake = discriminator(fake.detach().float())
    d_loss = F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean()
    return {"d_loss": d_loss, "d_real": logits_real.mean().detach(), "d_fake": logits_fake.mean().detach()}


def gan_optimizers(model: nn.Module, discriminator: nn.Module, discriminator_loss: Callable[..., dict[str, Tensor]],
                   train_cfg: TrainConfig) -> Optimizers:
    """A VAE-GAN's optimisers: Adam for the generator (every weight of `model` but the discriminator's, the ones the
    EMA averages, whose gradient norm is logged and clipped) and a second Adam for the discriminator minimising
    "d_loss" of `discriminator_loss` on the same batch, with the usual GAN betas (VQGAN's: a discriminator that
    remembers less of its past gradients follows the moving generator better). The discriminator's EMA copy follows
    the live one."""
    disc = list(discriminator.parameters())
    disc_ids = {id(p) for p in disc}
    generator = [p for p in model.parameters() if id(p) not in disc_ids]
    d_opt = torch.optim.Adam(disc, lr=train_cfg.lr, betas=(0.5, 0.9))
    return Optimizers(adam(generator, train_cfg),
                      extra=(ExtraObjective("discriminator", d_opt, discriminator_loss, "d_loss"),),
                      averaged=tuple(generator))
