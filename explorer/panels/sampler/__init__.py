"""The Sampler panel: a grid of a VAE's samples, one row per class, from a chosen source of z (panel.py)."""

from explorer.panels.sampler.controls import DENSITY, DIFFUSION_PRIOR, PRIOR, REGION, SOURCES
from explorer.panels.sampler.panel import SamplerPanel

__all__ = ["DENSITY", "DIFFUSION_PRIOR", "PRIOR", "REGION", "SOURCES", "SamplerPanel"]
