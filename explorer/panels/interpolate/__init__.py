"""The Interpolation panel: a walk between two latents, live and as a strip, with per-dimension traversal
(panel.py)."""

from explorer.panels.interpolate.panel import InterpolatePanel, torch_images

__all__ = ["InterpolatePanel", "torch_images"]
