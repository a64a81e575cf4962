"""The Codes tab: a VQ-VAE's code grid editor and codebook usage (panel.py), views over one model (model.py)."""

from explorer.panels.codes.panel import NOT_VQ, CodesPanel

__all__ = ["NOT_VQ", "CodesPanel"]
