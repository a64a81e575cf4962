"""diffusers' classes, imported under one lock.

diffusers loads its submodules lazily, on the first attribute access, and that loading is not thread-safe: two
threads asking for different names at once (the GUI loads the bundled diffusion model for Denoise/Enhance on one
worker while the Sampler fits a diffusion prior on another) make one of them fail with "ImportError: cannot import
name 'UNet2DModel' from 'diffusers'" (three runs out of three in a fresh interpreter here). Every import of a
diffusers class in core/ goes through `from_diffusers`, which holds one lock while diffusers loads it."""

from __future__ import annotations

import threading
from typing import Any

_LOCK = threading.Lock()


def from_diffusers(*names: str) -> Any:
    """The diffusers class `names[0]`, or a tuple of them for several names (lazy: only the models that use diffusers
    load it)."""
    with _LOCK:
        import diffusers

        found = tuple(getattr(diffusers, name) for name in names)
    return found[0] if len(found) == 1 else found
