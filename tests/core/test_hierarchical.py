"""The hierarchical VAE: its flat code is each layer's standardised prior noise (N(0, I) prior), per-layer KLs that
add up to the KL, a deterministic encode/decode round trip, training, saving, loading, sampling and exact resume."""

import math

import pytest
import torch
from resume_check import stop_and_resume

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import DatasetMeta, load_dataset
from core.errors import UserError
from core.evaluation.evaluate import _iwae_nll
from core.images import as_float
from core.models import build_model
from core.models.hierarchical import HierarchicalVAE
from core.models.protocol import LatentVariableModel
from core.training.checkpoint import load_model
from core.training.events import EpochSummary, StepMetrics
from core.training.trainer import Trainer

DATA = DataConfig("digits", image_size=16, per_class=12)
HVAE = VAEConfig(latent_dim=4, width=8, stochastic_layers=3, layer_channels=2)


def tiny(**train) -> Config:
    base = dict(epochs=2, batch_size=16, log_every=1, device="cpu", seed=3)
    base.update(train)
    return Config(DATA, HVAE, TrainConfig(**base))


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATA)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    run = tmp_path_factory.mktemp("hvae")
    events = list(Trainer(tiny(epochs=3), run_dir=run, dataset=dataset).run())
    assert events[-1].status == "completed"
    return run, events


def test_layers_name_the_slices_of_the_flat_code():
    model = build_model(HVAE, DatasetMeta("t", tuple("0123456789"), 1, 16))
    assert isinstance(model, HierarchicalVAE) and isinstance(model, LatentVariableModel)
    # 16 px, 3 stages: the decoder starts at 2x2 (z2) and 4x4 (z3); 2 channels each
    assert model.latent_layers == (("z1", 4), ("z2", 2 * 2 * 2), ("z3", 2 * 4 * 4))
    assert model.latent_dim == 4 + 8 + 32
    x, y = torch.rand(3, 1, 16, 16), torch.tensor([0, 5, 9])
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (3, 44)
    assert model.label_embedding(y).shape == (3, 44) and (model.label_embedding(y)[:, 4:] == 0).all()
    with pytest.raises(UserError, match="stochastic_layers"):
        VAEConfig(stages=2, stochastic_layers=3)


def test_per_layer_kls_add_up_to_the_kl(dataset):
    torch.manual_seed(0)
    model = build_model(HVAE, dataset.meta)
    x, y = as_float(dataset.train.images[:32]), dataset.train.labels[:32]
    out = model.loss(x, y, with_kl_dims=True)
    layers = [out[f"kl_{name}"] for name, _ in model.latent_layers]
    assert len(layers) == 3 and all(v.item() >= 0 for v in layers)
    assert sum(v.item() for v in layers) == pytest.approx(out["kl"].item(), rel=1e-5)
    assert out["kl_dims"].shape == (model.latent_dim,)
    assert out["kl_dims"].sum().item() == pytest.approx(out["kl"].item(), rel=1e-5)
    assert out["elbo"].item() == pytest.approx(-(out["recon"] + out["kl"]).item(), rel=1e-6)


def test_trains_saves_loads_samples_and_logs_each_layers_kl(trained, dataset):
    run, events = trained
    steps = [ev for ev in events if isinstance(ev, StepMetrics)]
    assert {"kl_z1", "kl_z2", "kl_z3"} <= set(steps[-1].metrics)
    first, last = steps[0].metrics["loss"], steps[-1].metrics["loss"]
    assert last < first   # it learns
    epoch = [ev for ev in events if isinstance(ev, EpochSummary)][-1]
    assert epoch.kl_per_dim.shape == (44,) and "kl_z2" in epoch.val
    loaded = load_model(run / "checkpoints" / "last.safetensors")
    assert isinstance(loaded.model, HierarchicalVAE) and loaded.model.latent_layers[0] == ("z1", 4)
    g = torch.Generator().manual_seed(0)
    images = loaded.model.sample(torch.arange(10), generator=g, temperature=0.8)
    assert images.shape == (10, 1, 16, 16) and images.min() >= 0 and images.max() <= 1
    # The flat code's layers all matter: changing only the lowest layer's slice changes the image.
    z = torch.zeros(1, loaded.model.latent_dim)
    z_low = z.clone()
    z_low[:, -32:] = 2.0
    y = torch.tensor([3])
    assert not torch.allclose(loaded.model.decode(z, y), loaded.model.decode(z_low, y))


def test_the_density_on_the_top_layer_leaves_the_layers_below_to_the_prior(trained, dataset):
    import numpy as np

    from core.latent.density import fit_density

    run, _ = trained
    model = load_model(run / "checkpoints" / "last.safetensors").model.eval()
    whole = fit_density(model, dataset.train, components=2)
    top = fit_density(model, dataset.train, components=2, top_layer=True)
    assert whole.fitted is None and whole.classes[3].means.shape == (2, 44)
    assert top.fitted == 4 and top.classes[3].means.shape == (2, 4) and top.latent_dim == 44
    assert "top layer z1: 4 of 44 dimensions" in top.describe()
    noise = np.random.default_rng(0).standard_normal((6, 44))
    labels, uniform = np.array([3, 3, 5, 5, 7, 7]), np.linspace(0, 0.99, 6)
    z = top.latents(labels, noise, uniform)
    np.testing.assert_allclose(z[:, 4:], noise[:, 4:], rtol=1e-6)          # the lower layers: the prior's draw
    assert not np.allclose(z[:, :4], noise[:, :4])                         # the top layer: the mixture's
    assert not np.allclose(whole.latents(labels, noise, uniform)[:, 4:], noise[:, 4:])


def test_encode_decode_round_trip_on_a_trained_model(trained, dataset):
    run, _ = trained
    model = load_model(run / "checkpoints" / "last.safetensors").model
    x, y = as_float(dataset.val.images[:16]), dataset.val.labels[:16]
    mu, _ = model.encode(x, y)
    # reconstruct is decode(posterior mean): deterministic, and the same as decoding the flat code encode gives
    assert torch.equal(model.reconstruct(x, y), model.decode(mu, y))
    assert torch.equal(model.decode(mu, y), model.decode(mu, y))
    # and it is a reconstruction: closer to x than a reconstruction of other images
    err_own = (model.decode(mu, y) - x).pow(2).mean().item()
    err_other = (model.decode(mu.roll(1, 0), y.roll(1, 0)) - x).pow(2).mean().item()
    assert err_own < err_other


def test_iwae_is_a_bound_at_least_as_tight_as_the_elbo_in_expectation(trained, dataset):
    run, _ = trained
    model = load_model(run / "checkpoints" / "last.safetensors").model
    split = dataset.val
    torch.manual_seed(0)
    with torch.no_grad():
        elbo = model.loss(as_float(split.images), split.labels)["elbo"].item()
        nll = _iwae_nll(model, split, 64, 256, torch.device("cpu"), torch.Generator().manual_seed(0), True,
                        lambda: None, lambda: False)
    assert math.isfinite(nll) and nll < -elbo + 1.0


@pytest.mark.parametrize("stop_at", [5, 11])   # 8 steps per epoch
def test_exact_resume(dataset, tmp_path, stop_at):
    _, _, straight, resumed = stop_and_resume(tiny(ema_decay=0.9), dataset, tmp_path, stop_at)
    assert straight == resumed


@pytest.mark.parametrize("options", [dict(conditional=False), dict(conditioning="concat"),
                                     dict(stage_labels="film"), dict(likelihood="discretized")])
def test_the_plain_vaes_options_work_in_the_hierarchy(options):
    torch.manual_seed(0)
    model = build_model(VAEConfig(latent_dim=4, width=8, stochastic_layers=2, **options),
                        DatasetMeta("t", tuple("0123456789"), 1, 28))
    x = torch.randint(0, 256, (3, 1, 28, 28)).float() / 255
    y = torch.tensor([0, 5, 9])
    mu, _ = model.encode(x, y)
    assert mu.shape == (3, model.latent_dim) and model.decode(mu, y).shape == x.shape
    out = model.loss(x, y)
    out["loss"].backward()
    assert all(torch.isfinite(v).all() for v in out.values())
    assert model.sample(y).shape == x.shape and model.label_embedding(y).shape == (3, model.latent_dim)
