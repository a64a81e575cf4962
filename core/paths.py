"""Where things live on the user's machine: caches, downloaded datasets, runs, bundled resources.

All per-user locations come from platformdirs and can be moved with VAE_EXPLORER_HOME (tests point it at a temporary
folder so they never touch the user's real cache).
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_cache_dir, user_data_dir

APP = "vae-explorer"
RESOURCES = Path(__file__).resolve().parent.parent / "resources"


def _home(kind: str) -> Path:
    override = os.environ.get("VAE_EXPLORER_HOME")
    if override:
        return Path(override) / kind
    return Path(user_cache_dir(APP)) if kind == "cache" else Path(user_data_dir(APP))


def cache_dir(*parts: str) -> Path:
    """A folder under the user cache dir (created), e.g. cache_dir("datasets") or cache_dir("projections")."""
    path = _home("cache").joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """Default parent folder of run folders started from the GUI."""
    path = _home("data") / "runs"
    path.mkdir(parents=True, exist_ok=True)
    return path


def bundled_model(kind: str) -> Path | None:
    """The small model shipped in resources/ for the digits dataset ("vae" or "diffusion"), if present."""
    path = RESOURCES / f"digits-{kind}.safetensors"
    return path if path.is_file() else None
