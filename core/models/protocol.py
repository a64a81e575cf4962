"""What a generative model offers the rest of the program: one `typing.Protocol` per capability.

Every model (`GenerativeModel`) says what it is (`kind`), what it was trained on (`num_classes`, `class_names`,
`channels`, `image_size`), how it trains (`loss`) and how it draws images (`sample`). A VAE (`LatentVariableModel`)
also maps images to latents and back (`encode`, `decode`, `reconstruct`) and scores pixels under its likelihood,
which the latent map, interpolation, the VAE restorers and the IWAE bound need. The diffusion model
(`DenoisingModel`) restores images by running part of its reverse process. A new model kind plugs in by being an
`nn.Module` that implements one of these, plus an entry in `build_model`; code asks `model.kind` or the protocol,
never `getattr` with a default. How a model is optimised is its own business too (`ConfiguresOptimizers`, optional:
the default is one Adam over all its weights), so the Trainer has no branch on a model's kind.

All images are float (B, C, H, W) in [0, 1]; labels are int64 (B,), or None for an unconditional model
(`num_classes == 0`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeGuard, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from core.config import TrainConfig
    from core.models.optimizers import Optimizers

Progress = Callable[[int, int], None] | None
ShouldStop = Callable[[], bool] | None


@runtime_checkable
class GenerativeModel(Protocol):
    """Every model. Also an `nn.Module` (parameters, eval, to, state_dict)."""

    kind: str                       # "vae", "diffusion" or "vqvae": what a checkpoint's metadata and the panels name it
    num_classes: int                # 0: unconditional
    class_names: tuple[str, ...]    # one per class; () when unconditional
    channels: int
    image_size: int

    def loss(self, x: Tensor, y: Tensor | None, *, step: int = 0) -> dict[str, Tensor]:
        """The training objective: "loss" (the scalar to minimise) and its named terms, batch means."""
        ...

    def sample(self, labels: Tensor, *, generator: torch.Generator | None = None, **options: Any) -> Tensor | None:
        """Images for `labels` (B,), float in [0, 1] (B, C, H, W); None when a long sampler was stopped."""
        ...

    def parameters(self, recurse: bool = True) -> Any: ...


@runtime_checkable
class LatentVariableModel(GenerativeModel, Protocol):
    """A VAE: images <-> latents z in R^latent_dim, with a likelihood p(x | z, y)."""

    latent_dim: int

    @property
    def latent_layers(self) -> tuple[tuple[str, int], ...]:
        """Names and sizes of the consecutive slices of the flat latent vector, top layer first (sizes add up to
        `latent_dim`); a plain VAE has one, `(("z", latent_dim),)`. A hierarchical VAE's flat code is its layers'
        standardised prior noise, so every slice has an N(0, I) prior and a panel can act on one layer's slice."""
        ...

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Mean and log-variance of q(z | x, y), each (B, latent_dim)."""
        ...

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """The mean image of p(x | z, y); y is class indices (B,) or class weights (B, num_classes), a blend."""
        ...

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """decode(posterior mean): a deterministic reconstruction."""
        ...

    def label_embedding(self, y: Tensor | None, batch: int | None = None) -> Tensor:
        """What the label adds to z before the decoder, (B, latent_dim) (a class morph walks it)."""
        ...

    @property
    def label_is_additive(self) -> bool:
        """The label enters as a vector added to z, so labels can be blended (a class morph); else they switch."""
        ...

    def log_likelihood(self, x: Tensor, z: Tensor, y: Tensor | None = None) -> Tensor:
        """log p(x | z, y) per image (B,), nats, under the model's own likelihood (for the IWAE bound)."""
        ...


@runtime_checkable
class ConfiguresOptimizers(Protocol):
    """A model that chooses its own optimisers (nanoGPT's `configure_optimizers`). Optional: a model without it is
    trained by one Adam over all its parameters, all averaged (core/models/optimizers.py `default_optimizers`)."""

    def configure_optimizers(self, train_cfg: TrainConfig) -> Optimizers:
        """The model's optimiser, any extra objectives with optimisers of their own (a discriminator) and the
        parameters the EMA averages; built for the model's parameters where they are now (its device)."""
        ...


@runtime_checkable
class AdversarialModel(GenerativeModel, Protocol):
    """A model that can train against a discriminator of its own (a VAE-GAN). Its `configure_optimizers` gives the
    discriminator an optimiser of its own (an `ExtraObjective` minimising `discriminator_loss`) and keeps it out of
    the EMA's averaging; `loss` already holds the generator's adversarial term."""

    def discriminator_parameters(self) -> list[torch.nn.Parameter]:
        """The discriminator's weights; empty when this model trains without one."""
        ...

    def discriminator_loss(self, x: Tensor, y: Tensor | None = None, *, step: int = 0) -> dict[str, Tensor]:
        """"d_loss" (minimised by the discriminator's optimiser) and its terms; a "d_loss" without a gradient means
        the discriminator does not train at this step."""
        ...


@runtime_checkable
class DenoisingModel(GenerativeModel, Protocol):
    """A diffusion model: besides sampling, it restores images by running part of its reverse process."""

    def restore(self, x_corrupted: Tensor, *, strength: float, mask: Tensor | None = None,
                labels: Tensor | None = None, steps: int = 100, sampler: str = "ddpm",
                generator: torch.Generator | None = None, progress: Progress = None, should_stop: ShouldStop = None,
                consistency: Callable[[Tensor], Tensor] | None = None) -> Tensor | None:
        """SDEdit from `strength` of the chain (RePaint where `mask` is 1); None when stopped."""
        ...


@runtime_checkable
class DiscreteCodeModel(GenerativeModel, Protocol):
    """A VQ-VAE: images <-> (grid, grid) grids of indices into a codebook of `codebook_size` vectors, and an
    autoregressive prior over the grids (`has_prior`: False for a first-stage model, which has none yet)."""

    codebook_size: int
    grid: int

    @property
    def codebook(self) -> Tensor:
        """The code vectors, (codebook_size, code_dim)."""
        ...

    @property
    def has_prior(self) -> bool: ...

    def encode_codes(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """The code grid of each image, (B, grid, grid) long."""
        ...

    def decode_codes(self, codes: Tensor, y: Tensor | None = None) -> Tensor:
        """Images in [0, 1] (B, C, H, W) from code grids (B, grid, grid)."""
        ...

    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor: ...

    def prior_nll(self, codes: Tensor, y: Tensor | None = None) -> Tensor:
        """-log p(codes | y) per image (B,), nats, under the code prior."""
        ...


@runtime_checkable
class SecondStageModel(GenerativeModel, Protocol):
    """A model whose run may be a second stage: it trains on top of a frozen first stage whose weights come from a
    checkpoint (core/training/second_stage.py loads them when the run starts)."""

    @property
    def first_stage(self) -> str | None:
        """The first stage's checkpoint; None when this run trains the first stage itself."""
        ...

    def load_first_stage(self, state: dict[str, Tensor], source_config: Any) -> None:
        """Take the first stage's weights from its checkpoint's state dict (its config `source_config`); UserError
        when they do not fit."""
        ...


def is_vae(model: GenerativeModel | None) -> TypeGuard[LatentVariableModel]:
    """True for a model that encodes and decodes (what the latent tools and the VAE restorers need)."""
    return model is not None and model.kind == "vae"


def is_vqvae(model: GenerativeModel | None) -> TypeGuard[DiscreteCodeModel]:
    """True for a VQ-VAE (discrete code grids and a code prior)."""
    return model is not None and model.kind == "vqvae"

