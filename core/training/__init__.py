"""Training: the Trainer (`trainer.py`, an iterator of `events.py`), its weights' moving average (`ema.py`), torchrun
(`distributed.py`), the one checkpoint format (`checkpoint.py`) and the run folder seen from outside (`run_folder.py`).
Above data and models; below evaluation, latent, restoration and the CLI."""
