"""Model registry: `build_model(model_cfg, meta)` builds the network a config names.

The diffusion model is imported only when asked for, so that `diffusers` loads only when it is needed.
"""

from __future__ import annotations

from torch import nn


def build_model(model_cfg, meta) -> nn.Module:
    """The model for `model_cfg.kind` ("vae" or "diffusion") shaped for the dataset described by `meta`."""
    kind = getattr(model_cfg, "kind", None)
    if kind == "vae":
        from core.models.vae import ConditionalVAE

        return ConditionalVAE(model_cfg, meta)
    if kind == "diffusion":
        from core.models.diffusion import ConditionalDiffusion

        return ConditionalDiffusion(model_cfg, meta)
    from core.errors import UserError

    raise UserError(f"unknown model kind {kind!r}; choose 'vae' or 'diffusion'")
