"""How good is a model: SSIM/PSNR (`image_quality.py`), the judge classifier (`judge.py`), the Fréchet distance
(`frechet.py`) and `evaluate()`, which runs them all (`evaluate.py`)."""
