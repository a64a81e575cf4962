"""A small class-conditional diffusion model over vectors: a VAE's latents (the "learned prior" of a two-stage VAE,
Dai & Wipf 2019; latent diffusion, Rombach et al. 2022).

Two layers, as in lucidrains' denoising-diffusion-pytorch: the network (`LatentDenoiser`, an MLP of residual blocks
whose every block is modulated by a time + label embedding, adaLN style as in DiT) and the process
(`VectorDiffusion(network, ...)`, which takes its network instead of building it): v-prediction training on diffusers'
DDPM noise schedule, and DPM-Solver++ sampling (diffusers' `DPMSolverMultistepScheduler`) built from the same schedule
config, so training noise and the sampler agree. Label `num_classes` means "no label": trained with probability
`label_dropout` so that classifier-free guidance is available at sampling time.

Vectors go in and out standardised: the caller (core/latent/diffusion_prior.py) maps latents to zero mean and unit
variance per dimension before training and back after sampling. diffusers is imported only when a process is built.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.models.diffusers_import import from_diffusers


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal embedding of integer timesteps (B,) -> (B, dim), as in the DDPM and Transformer papers."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResidualBlock(nn.Module):
    """LayerNorm, scale and shift from the conditioning, Linear-SiLU-Linear, added back (zero-initialised out)."""

    def __init__(self, width: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(width, elementwise_affine=False)
        self.modulation = nn.Linear(width, 2 * width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        scale, shift = self.modulation(F.silu(cond)).chunk(2, dim=1)
        x = self.norm(h) * (1 + scale) + shift
        return h + self.fc2(self.dropout(F.silu(self.fc1(x))))


class LatentDenoiser(nn.Module):
    """v(x_t, t, y) for vectors x_t (B, dim); labels 0..num_classes-1, or num_classes for "no label"."""

    def __init__(self, dim: int, num_classes: int, *, width: int = 256, blocks: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        assert dim >= 1 and width >= 8 and blocks >= 1, "the denoiser needs dim >= 1, width >= 8 and a block"
        self.dim, self.num_classes, self.width = int(dim), int(num_classes), int(width)
        self.inp = nn.Linear(dim, width)
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.label = nn.Embedding(num_classes + 1, width)    # the last row: "no label"
        self.blocks = nn.ModuleList([ResidualBlock(width, dropout) for _ in range(blocks)])
        self.out_norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, dim)

    def forward(self, x: Tensor, t: Tensor, y: Tensor) -> Tensor:
        cond = self.time(timestep_embedding(t, self.width)) + self.label(y)
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, cond)
        return self.out(self.out_norm(h))


class VectorDiffusion(nn.Module):
    """The diffusion process around a network `net(x_t, t, y) -> v`: v-prediction loss and DPM-Solver++ sampling."""

    def __init__(self, net: LatentDenoiser, *, timesteps: int = 1000, schedule: str = "squaredcos_cap_v2",
                 label_dropout: float = 0.1) -> None:
        super().__init__()
        DDPMScheduler = from_diffusers("DDPMScheduler")

        assert 0.0 <= label_dropout < 1.0, f"label_dropout must be in [0, 1), got {label_dropout}"
        self.net = net
        self.label_dropout = float(label_dropout)
        self.scheduler = DDPMScheduler(num_train_timesteps=int(timesteps), beta_schedule=schedule,
                                       prediction_type="v_prediction", clip_sample=False)

    @property
    def null_label(self) -> int:
        return self.net.num_classes

    def loss(self, x0: Tensor, y: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Mean squared error of the predicted velocity v = alpha_t * eps - sigma_t * x0 (Salimans & Ho 2022)."""
        b = len(x0)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (b,), generator=generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=generator).to(x0.device)
        x_t = self.scheduler.add_noise(x0, noise, t)
        target = self.scheduler.get_velocity(x0, noise, t)
        if self.label_dropout > 0:
            drop = torch.rand(b, generator=generator).to(x0.device) < self.label_dropout
            y = torch.where(drop, torch.full_like(y, self.null_label), y)
        return F.mse_loss(self.net(x_t, t, y), target)

    def make_sampler(self, steps: int, *, stochastic: bool = False) -> Any:
        """DPM-Solver++ (2nd order, multistep) on the training schedule, with `steps` steps; `stochastic`: its SDE
        form (fresh noise at each step), else the deterministic ODE."""
        DPMSolverMultistepScheduler = from_diffusers("DPMSolverMultistepScheduler")

        algorithm = "sde-dpmsolver++" if stochastic else "dpmsolver++"
        sampler = DPMSolverMultistepScheduler.from_config(self.scheduler.config, algorithm_type=algorithm,
                                                          solver_order=2, prediction_type="v_prediction")
        sampler.set_timesteps(int(steps))
        return sampler

    @torch.no_grad()
    def sample(self, labels: Tensor, noise: Tensor, *, steps: int = 20, guidance: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Vectors (B, dim) for `labels` (B,), starting from standard-normal `noise` (B, dim) (scaled by the
        caller's temperature). guidance 1: the conditional model alone; > 1: classifier-free guidance. With a
        `generator` (on the network's device), the stochastic sampler draws its step noise from it."""
        assert steps >= 1, f"the sampler needs at least one step, got {steps}"
        device = next(self.net.parameters()).device
        sampler = self.make_sampler(steps, stochastic=generator is not None)
        x = noise.to(device, torch.float32) * sampler.init_noise_sigma
        y = labels.to(device, torch.long).reshape(-1)
        null = torch.full_like(y, self.null_label)
        for t in sampler.timesteps:
            tt = torch.full((len(x),), int(t), device=device, dtype=torch.long)
            v = self.net(x, tt, y)
            if guidance != 1.0:
                unconditional = self.net(x, tt, null)
                v = unconditional + guidance * (v - unconditional)
            x = sampler.step(v, t, x, generator=generator).prev_sample
        return x
