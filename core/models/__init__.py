"""The generative models and the protocol they share (`protocol.py`); `build_model(model_cfg, meta)` builds the network
a config names.

The diffusion model is imported only when asked for, so that `diffusers` loads only when it is needed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.config import DiffusionConfig, VAEConfig, VQVAEConfig
from core.errors import UserError
from core.models.protocol import GenerativeModel

if TYPE_CHECKING:
    from core.data.datasets import DatasetMeta


def build_model(model_cfg: VAEConfig | DiffusionConfig | VQVAEConfig, meta: DatasetMeta) -> GenerativeModel:
    """The model for `model_cfg.kind` ("vae", "diffusion" or "vqvae") shaped for the dataset described by `meta`."""
    if isinstance(model_cfg, VAEConfig):
        if model_cfg.stochastic_layers > 1:
            from core.models.hierarchical import HierarchicalVAE

            return HierarchicalVAE(model_cfg, meta)
        from core.models.vae import ConditionalVAE

        return ConditionalVAE(model_cfg, meta)
    if isinstance(model_cfg, DiffusionConfig):
        from core.models.diffusion import ConditionalDiffusion, build_unet

        return ConditionalDiffusion(build_unet(model_cfg, meta), model_cfg, meta)
    if isinstance(model_cfg, VQVAEConfig):
        from core.models.vqvae import VQVAE

        return VQVAE(model_cfg, meta)
    raise UserError(f"unknown model settings {type(model_cfg).__name__}; choose a 'vae', 'diffusion' or 'vqvae' "
                    "model")
