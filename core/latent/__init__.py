"""A VAE's latent space: encoding a split and decoding latents (`encoding.py`), paths through it (`interpolation.py`),
sampler grids (`sampling.py`), 2-D maps (`projection.py`) and map position -> latent (`positions.py`)."""
