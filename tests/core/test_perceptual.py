"""Perceptual losses: the focal frequency loss measures blur, a VAE trains with it and round-trips through a checkpoint;
the VGG loss never downloads (a missing weights file is one UserError) and, given a weights file, trains without its
weights entering the model's checkpoint."""

import pytest
import torch
from resume_check import stop_and_resume
from torchvision.transforms.functional import gaussian_blur

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.errors import UserError
from core.images import as_float
from core.models import build_model
from core.models.perceptual import VGG16_FILE, focal_frequency_loss
from core.training.checkpoint import load_checkpoint, load_model
from core.training.events import StepMetrics
from core.training.trainer import Trainer

DATA = DataConfig("digits", image_size=16, per_class=12)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATA)


def tiny(model: VAEConfig, **train) -> Config:
    base = dict(epochs=1, batch_size=16, log_every=1, device="cpu", seed=5)
    base.update(train)
    return Config(DATA, model, TrainConfig(**base))


def test_fft_loss_is_zero_for_identical_images_and_grows_with_blur(dataset):
    x = as_float(dataset.test.images[:32])
    assert torch.equal(focal_frequency_loss(x, x), torch.zeros(32))
    losses = [focal_frequency_loss(gaussian_blur(x, 5, sigma), x).mean().item() for sigma in (0.5, 1.0, 2.0)]
    assert 0 < losses[0] < losses[1] < losses[2]


def test_a_vae_with_the_fft_loss_trains_logs_it_saves_loads_and_samples(dataset, tmp_path):
    cfg = tiny(VAEConfig(latent_dim=4, width=8, perceptual="fft", perceptual_weight=2.0))
    events = list(Trainer(cfg, run_dir=tmp_path, dataset=dataset).run())
    assert events[-1].status == "completed"
    assert all(ev.metrics["perceptual"] > 0 for ev in events if isinstance(ev, StepMetrics))

    loaded = load_model(tmp_path / "checkpoints" / "last.safetensors")
    assert loaded.config.model.perceptual == "fft" and loaded.config.model.perceptual_weight == 2.0
    model = loaded.model.eval()
    x, y = as_float(dataset.test.images[:16]), dataset.test.labels[:16]
    with torch.no_grad():
        out = model.loss(x, y)
    # The term joins the loss with its weight; the ELBO keeps its meaning (recon + KL, no perceptual part).
    torch.testing.assert_close(out["loss"], out["recon"] + out["kl"] + 2.0 * out["perceptual"])
    torch.testing.assert_close(out["elbo"], -(out["recon"] + out["kl"]))
    images = model.sample(torch.arange(10), generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 16, 16) and 0 <= images.min() and images.max() <= 1


def test_the_vgg_loss_without_its_weights_file_is_one_user_error(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match=VGG16_FILE) as err:
        build_model(VAEConfig(latent_dim=4, width=8, perceptual="vgg"), load_dataset(DATA).meta)
    assert str(tmp_path) in str(err.value) and "perceptual=fft" in str(err.value)
    assert not (tmp_path / "hub" / "checkpoints" / VGG16_FILE).exists()   # nothing was downloaded


def test_the_vgg_loss_with_a_weights_file_trains_and_stays_out_of_the_checkpoint(dataset, monkeypatch, tmp_path):
    from torchvision.models.vgg import cfgs, make_layers

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    weights = tmp_path / "torch" / "hub" / "checkpoints" / VGG16_FILE
    weights.parent.mkdir(parents=True)
    # A random VGG16's feature layers up to relu3_3, under the keys torchvision's file uses ("features.N.weight").
    torch.save({f"features.{k}": v for k, v in make_layers(cfgs["D"][:9]).state_dict().items()}, weights)

    run = tmp_path / "run"
    cfg = tiny(VAEConfig(latent_dim=4, width=8, perceptual="vgg", perceptual_weight=0.5), max_steps=2)
    events = list(Trainer(cfg, run_dir=run, dataset=dataset).run())
    assert events[-1].status == "completed"
    assert all(ev.metrics["perceptual"] > 0 for ev in events if isinstance(ev, StepMetrics))
    state = load_checkpoint(run / "checkpoints" / "last.safetensors").model_state
    assert not any("features" in k or "perceptual" in k for k in state)

    x = as_float(dataset.test.images[:8])
    model = load_model(run / "checkpoints" / "last.safetensors").model
    assert torch.equal(model.perceptual_loss(x, x), torch.zeros(8))


@pytest.mark.parametrize("layers", [1, 2])
def test_the_perceptual_term_joins_the_loss_of_plain_and_hierarchical_vaes(dataset, layers):
    torch.manual_seed(0)
    model = build_model(VAEConfig(latent_dim=4, width=8, stages=2, stochastic_layers=layers, perceptual="fft",
                                  perceptual_weight=3.0), dataset.meta)
    x, y = as_float(dataset.test.images[:8]), dataset.test.labels[:8]
    torch.manual_seed(1)
    out = model.loss(x, y)
    assert out["perceptual"] > 0
    torch.testing.assert_close(out["loss"], out["recon"] + out["kl"] + 3.0 * out["perceptual"])


@pytest.mark.parametrize("stop_at", [5, 11])   # 8 steps per epoch
def test_exact_resume_with_the_fft_loss(dataset, tmp_path, stop_at):
    cfg = tiny(VAEConfig(latent_dim=4, width=8, perceptual="fft", perceptual_weight=2.0), epochs=2, ema_decay=0.9)
    _, _, straight, resumed = stop_and_resume(cfg, dataset, tmp_path, stop_at)
    assert straight == resumed
    assert all(m["perceptual"] > 0 for m in resumed.values())
