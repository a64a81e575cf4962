"""Denoise / enhance: the corruptions and their forward operators (`corruptions.py`), the scikit-image baselines
(`classical.py`), the VAE and diffusion restorers (`learned.py`) and the benchmark that scores them all
(`benchmark.py`)."""
