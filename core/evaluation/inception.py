"""The standard FID (Inception-v3 pool features, torch-fidelity's port of the TensorFlow graph) when it can be had
without waiting on the network.

The FID needs two things this offline-first tool cannot assume: the `torch-fidelity` package (the optional extra
`vae-explorer[fid]`) and its Inception weights (~92 MB) in torch's hub cache. `inception_status()` says whether both
are here, and if not, what is missing and how to get it; evaluation then falls back to the Fréchet distance in our
per-dataset classifier's features (`core/evaluation/frechet.py`), and every table says which one it shows. Nothing
here downloads: `fetch_inception_weights()` is the one explicit way to fetch the file (`vae-explorer eval --fid
fetch`), so an evaluation never blocks on a download.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from core.errors import UserError
from core.evaluation.frechet import fid_like

WEIGHTS_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
               "weights-inception-2015-12-05-6726825d.pth")
WEIGHTS_NAME = WEIGHTS_URL.rsplit("/", 1)[1]
# torch.hub's convention: the hex digits after the last "-" of the file name begin the file's SHA-256. Checking them
# means a number labelled "FID" always comes from the published weights, never from a truncated or different file.
WEIGHTS_SHA256_PREFIX = "6726825d"
FEATURES = "2048"   # the pool3 features the FID is defined on


@dataclass(frozen=True)
class InceptionStatus:
    available: bool
    weights: Path
    reason: str = ""   # why not available, and what to do


def weights_path() -> Path:
    """Where torch.hub (and torch-fidelity) keep the Inception weights: $TORCH_HOME/hub/checkpoints/."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME


def inception_status() -> InceptionStatus:
    """Whether the standard FID can be computed now, without a download."""
    path = weights_path()
    try:
        import torch_fidelity  # noqa: F401  (only asking whether it is installed)
    except ImportError:
        return InceptionStatus(False, path, "torch-fidelity is not installed (pip install 'vae-explorer[fid]')")
    if not path.is_file():
        return InceptionStatus(False, path, f"the Inception weights are not in {path.parent} (fetch them once with "
                                            "`vae-explorer eval CHECKPOINT --fid fetch`, or copy "
                                            f"{WEIGHTS_NAME} there)")
    if not _sha256_of(path, path.stat().st_size, path.stat().st_mtime_ns).startswith(WEIGHTS_SHA256_PREFIX):
        return InceptionStatus(False, path, f"{path} is not the published Inception weights file (its checksum "
                                            "differs); delete it and fetch it again")
    return InceptionStatus(True, path)


@lru_cache(maxsize=4)
def _sha256_of(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_inception_weights() -> Path:
    """Download the weights into torch's hub cache (an explicit user request; shows torch's own progress)."""
    path = weights_path()
    try:
        torch.hub.load_state_dict_from_url(WEIGHTS_URL, progress=True, check_hash=True, map_location="cpu")
    except (OSError, RuntimeError) as e:   # URLError is an OSError; a checksum mismatch is a RuntimeError
        raise UserError(f"could not download the Inception weights from {WEIGHTS_URL} ({e}); download the file by "
                        f"hand and put it in {path.parent}") from None
    return path


@lru_cache(maxsize=1)
def _extractor(path: str, device: str) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    try:
        # torch-fidelity loads the file with weights_only=False (it unpickles). Loading it first with weights_only=True
        # proves it holds only tensors, so its own load can run no code.
        torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure to read the file means "not a usable weights file"
        raise UserError(f"{path} cannot be read as Inception weights ({type(e).__name__}); delete it and fetch it "
                        "again") from None
    net = FeatureExtractorInceptionV3("inception-v3-compat", [FEATURES], feature_extractor_weights_path=path)
    return net.to(device)


@torch.no_grad()
def inception_features(images: torch.Tensor, *, weights: Path, batch_size: int = 64,
                       device: torch.device | str = "cpu") -> np.ndarray:
    """Pool3 features (N, 2048) of float images in [0, 1], (N, C, H, W); grayscale is repeated to RGB and every image
    is resized to 299 px inside the network, as the reference FID does."""
    net = _extractor(str(weights), str(device))
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].clamp(0, 1).mul(255).round().to(torch.uint8)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        out.append(net(x.to(device))[0].double().cpu().numpy())
    return np.concatenate(out)


def inception_fid(real: torch.Tensor, fake: torch.Tensor, *, weights: Path,
                  device: torch.device | str = "cpu") -> float:
    """The FID between two image sets (float [0, 1], (N, C, H, W)), with the weights at `weights`."""
    return fid_like(inception_features(real, weights=weights, device=device),
                    inception_features(fake, weights=weights, device=device))
