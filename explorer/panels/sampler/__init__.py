"""The Sampler panel: a grid of a VAE's samples, one row per class, from a chosen source of z (panel.py)."""

from explorer.panels.sampler.panel import DENSITY, PRIOR, REGION, SOURCES, SamplerPanel

__all__ = ["DENSITY", "PRIOR", "REGION", "SOURCES", "SamplerPanel"]
