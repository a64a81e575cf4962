"""What the application loads when it starts, on a worker thread after the window is shown (torch is imported here,
not on the GUI thread): the bundled dataset and models, or a checkpoint given on the command line, and the device.

The bundled models of `DEFERRED_KINDS` are only named, not loaded: the window loads one when a panel first needs it
(explorer/bundled.py). Building the DDPM imports diffusers, ~350 MiB that a session looking at its VAE never uses
(launch RSS 1,053 -> 706 MiB, bench/bench_launch_memory.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

DEFERRED_KINDS = ("diffusion",)


def load_startup(path: str | None) -> dict[str, Any]:
    """{"device": text, "dataset": Dataset (when it loaded), "models": [LoadedModel], "deferred": {kind: Path of a
    bundled model left for later}, "errors": [exceptions]}.

    A failure is collected, not raised, so that what did load still reaches the window."""
    import torch

    from core.config import DataConfig
    from core.data.datasets import load_dataset
    from core.paths import bundled_model
    from core.training.checkpoint import load_model

    out: dict[str, Any] = {"errors": [], "models": [], "deferred": {}}
    if torch.cuda.is_available():
        out["device"] = f"CUDA: {torch.cuda.get_device_name(0)}"
    else:
        n = torch.get_num_threads()
        out["device"] = f"CPU, {n} thread{'s' if n != 1 else ''}"
    try:
        out["dataset"] = load_dataset(DataConfig())
    except Exception as exc:  # noqa: BLE001 - start-up goes on without it; the window shows the error
        out["errors"].append(exc)
    if path and Path(path).is_file():
        try:
            out["models"].append(load_model(path))
        except Exception as exc:  # noqa: BLE001 - start-up goes on without it; the window shows the error
            out["errors"].append(exc)
    for kind in ("vae", "diffusion"):
        if any(m.config.model_kind == kind for m in out["models"]):
            continue
        bundled = bundled_model(kind)
        if bundled is not None and kind in DEFERRED_KINDS:
            out["deferred"][kind] = bundled
        elif bundled is not None:
            try:
                out["models"].append(load_model(bundled))
            except Exception as exc:  # noqa: BLE001 - start-up goes on without it; the window shows the error
                out["errors"].append(exc)
    return out


def is_bundled(path: Path) -> bool:
    """A model shipped in resources/ (not worth a place in the recent-files menu)."""
    from core.paths import RESOURCES

    return Path(path).resolve().parent == RESOURCES
