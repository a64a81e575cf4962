"""Device choice: "auto" falls back to the CPU, and a device that is not there is one clear UserError."""

from __future__ import annotations

import pytest
import torch

from core.config import Config, DataConfig, VAEConfig
from core.data.datasets import DatasetMeta
from core.device import resolve_device
from core.errors import UserError
from core.models import build_model
from core.training.checkpoint import load_model, save_checkpoint


def test_auto_without_accelerators_is_the_cpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(("name", "says"), [("gpu7", "unknown device 'gpu7'"), ("cuda:0", "CUDA is not available"),
                                            ("mps", "MPS is not available")])
def test_a_device_that_is_not_here_is_a_user_error(monkeypatch, name, says):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(UserError, match=says):
        resolve_device(name)


def test_loading_a_checkpoint_onto_a_missing_device_says_so(monkeypatch, tmp_path):
    meta = DatasetMeta("digits", tuple(str(i) for i in range(10)), 1, 8)
    cfg = Config(DataConfig(image_size=8), VAEConfig(latent_dim=3, width=8, stages=1))
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model=build_model(cfg.model, meta), config=cfg, meta=meta)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(UserError, match="CUDA is not available"):
        load_model(path, device="cuda")
    assert next(load_model(path, device="cpu").model.parameters()).device.type == "cpu"
