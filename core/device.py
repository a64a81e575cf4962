"""Which torch device to use: "auto" picks CUDA, then MPS, then the CPU; a named device must exist on this machine."""

from __future__ import annotations

import torch

from core.errors import UserError


def _mps_available() -> bool:
    return getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" -> CUDA, then MPS, then CPU; otherwise the named device, which must exist here (UserError if not)."""
    if isinstance(name, str) and name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto")
    if dev.type == "mps" and not _mps_available():
        raise UserError(f"device {name!r} was asked for but MPS is not available here; use --device cpu or auto")
    return dev
