"""The Fréchet score: the standard Inception FID when torch-fidelity and its weights are here, never a download;
otherwise our classifier's Fréchet distance, labelled as such."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from core.cli.evaluate import format_eval
from core.data.datasets import load_dataset
from core.errors import UserError
from core.evaluation import inception
from core.evaluation.evaluate import evaluate
from core.training.checkpoint import load_model

BUNDLED_VAE = Path(__file__).resolve().parents[2] / "resources" / "digits-vae.safetensors"


@pytest.fixture
def hub_dir(tmp_path, monkeypatch):
    """An empty torch hub cache for the test: torch.hub.get_dir() is $TORCH_HOME/hub (set_dir would pin the folder for
    every later test)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    assert torch.hub.get_dir() == str(tmp_path / "hub")
    return tmp_path / "hub"


def test_without_weights_evaluation_falls_back_to_the_classifier_and_says_so(hub_dir, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("evaluation must never download")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    status = inception.inception_status()
    assert not status.available and str(hub_dir / "checkpoints") in status.reason and "--fid fetch" in status.reason

    loaded = load_model(BUNDLED_VAE)
    dataset = load_dataset(loaded.config.data)
    result = evaluate(loaded, dataset, "test", iwae_k=0, n_per_class=6)
    assert "fid" not in result and result["fid_source"] == "judge classifier"
    assert result["fid_like"] > 0 and "no Inception FID" in result["fid_note"]
    table = format_eval(result)
    assert "our classifier's features" in table and "FID (Inception" not in table and "no Inception FID" in table
    with pytest.raises(UserError, match="cannot compute the Inception FID: .*not in"):
        evaluate(loaded, dataset, "test", iwae_k=0, n_per_class=6, fid="inception")
    with pytest.raises(UserError, match="unknown Fréchet score"):
        evaluate(loaded, dataset, "test", iwae_k=0, n_per_class=6, fid="inceptoin")


def _random_inception_weights(path: Path, monkeypatch) -> None:
    """A weights file in torch-fidelity's format (randomly initialised: the real one is a 92 MB download)."""
    import torch_fidelity.feature_extractor_inceptionv3 as fe

    with monkeypatch.context() as m:
        m.setattr(fe, "load_state_dict_from_url", lambda *a, **k: None)
        m.setattr(fe.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None)
        net = fe.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), path)


def test_with_weights_the_fid_uses_inception_features(hub_dir, monkeypatch):
    path = hub_dir / "checkpoints" / inception.WEIGHTS_NAME
    _random_inception_weights(path, monkeypatch)
    status = inception.inception_status()
    assert not status.available and "checksum" in status.reason   # not the published file: no number called FID

    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(path.read_bytes()).hexdigest()[:8])
    status = inception.inception_status()
    assert status.available and status.weights == path
    gen = torch.Generator().manual_seed(0)
    gray = torch.rand(6, 1, 16, 16, generator=gen)
    features = inception.inception_features(gray, weights=path)
    assert features.shape == (6, 2048)
    same = inception.inception_fid(gray, gray, weights=path)
    other = inception.inception_fid(gray, torch.zeros(6, 1, 16, 16), weights=path)
    assert same == pytest.approx(0.0, abs=1e-6 * max(other, 1.0)) and other > same


def test_a_weights_file_that_is_not_plain_tensors_is_refused(hub_dir, monkeypatch):
    path = hub_dir / "checkpoints" / inception.WEIGHTS_NAME
    path.parent.mkdir(parents=True)
    torch.save({"weights": torch.zeros(2), "code": Path("/")}, path)   # a pickled object, not only tensors
    monkeypatch.setattr(inception, "WEIGHTS_SHA256_PREFIX", hashlib.sha256(path.read_bytes()).hexdigest()[:8])
    inception._extractor.cache_clear()
    with pytest.raises(UserError, match="cannot be read as Inception weights"):
        inception.inception_features(torch.rand(2, 1, 16, 16), weights=path)
