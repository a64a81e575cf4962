"""The VAE-GAN: a patch discriminator with its own optimiser, VQGAN's adaptive weight, exact resume of both networks,
the discriminator out of the EMA and out of sampling; and a plain VAE's checkpoint from before these options loads."""

import dataclasses
import json

import pytest
import torch
from resume_check import step_metrics, stop_and_resume
from safetensors import safe_open
from safetensors.torch import save_file

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.models.protocol import AdversarialModel
from core.training.checkpoint import load_checkpoint, load_model
from core.training.trainer import Trainer

DATA = DataConfig("digits", image_size=16, per_class=12)
GAN = VAEConfig(latent_dim=4, width=8, adversarial_weight=0.5, adversarial_start=4)


def tiny(model=GAN, **train) -> Config:
    base = dict(epochs=2, batch_size=16, log_every=1, device="cpu", seed=3)
    base.update(train)
    return Config(DATA, model, TrainConfig(**base))


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATA)


def test_trains_logs_its_curves_saves_loads_and_samples(dataset, tmp_path):
    events = list(Trainer(tiny(), run_dir=tmp_path, dataset=dataset).run())
    assert events[-1].status == "completed"
    metrics = step_metrics(events)
    before, after = metrics[2], metrics[12]
    # Off before adversarial_start: no adaptive weight, no discriminator loss; on after it, both are real numbers.
    assert before["adv_weight"] == 0 and before["d_loss"] == 0
    assert after["adv_weight"] > 0 and after["d_loss"] > 0 and "g_adv" in after
    # The hinge loss of an untrained discriminator is near 2 (both margins violated by ~1).
    assert 0.5 < after["d_loss"] < 4
    # The run record carries the curves the dashboard draws.
    recorded = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert any("d_loss" in r.get("metrics", {}) for r in recorded)

    ck = load_checkpoint(tmp_path / "checkpoints" / "last.safetensors")
    assert set(ck.optimizer_states) == {"model", "discriminator"}
    # The file keeps the layout checkpoints had before optimisers were named: "optim" and "optim_d".
    with safe_open(str(ck.path), framework="pt") as f:
        assert {k for k in f.metadata() if k.startswith("optim")} == {"optim", "optim_d"}
    assert any(k.startswith("discriminator.") for k in ck.model_state)
    loaded = load_model(tmp_path / "checkpoints" / "last.safetensors")
    assert isinstance(loaded.model, AdversarialModel) and loaded.model.discriminator_parameters()
    images = loaded.model.sample(torch.arange(10), generator=torch.Generator().manual_seed(0))
    assert images.shape == (10, 1, 16, 16) and 0 <= images.min() and images.max() <= 1


def test_the_discriminator_trains_only_with_its_own_optimiser_and_is_not_averaged(dataset):
    trainer = Trainer(tiny(ema_decay=0.5, max_steps=6), dataset=dataset)
    events = list(trainer.run())
    assert events[-1].status == "completed"
    model = trainer.model
    disc = {id(p) for p in model.discriminator_parameters()}
    optimizers = trainer.optimizers.named()   # what the VAE-GAN configured: the Trainer has no branch for it
    assert set(optimizers) == {"model", "discriminator"}
    main = {id(p) for g in optimizers["model"].param_groups for p in g["params"]}
    own = {id(p) for g in optimizers["discriminator"].param_groups for p in g["params"]}
    assert own == disc and not (main & disc) and main | disc == {id(p) for p in model.parameters()}
    # The EMA copy's discriminator equals the live one (copied, not averaged); its decoder lags behind (averaged).
    ema = trainer.ema.module
    assert all(torch.equal(a, b) for a, b in zip(ema.discriminator.parameters(),
                                                   model.discriminator.parameters(), strict=True))
    assert not torch.equal(ema.decoder[-1].weight, model.decoder[-1].weight)


def test_the_adaptive_weight_balances_the_gradients_at_the_last_layer():
    from core.data.datasets import DatasetMeta
    from core.models import build_model

    torch.manual_seed(0)
    model = build_model(VAEConfig(latent_dim=4, width=8, adversarial_weight=1.0),
                        DatasetMeta("t", tuple("0123456789"), 1, 16))
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    out = model.loss(x, y, step=0)
    last = model.decoder[-1].weight
    # The KL does not reach the decoder: at its last layer, the loss's gradient is recon's plus the adversarial one.
    grad_rec = torch.autograd.grad(out["recon"], last, retain_graph=True)[0]
    grad_adv = torch.autograd.grad(out["loss"], last)[0] - grad_rec
    # weight 1: the adversarial gradient at the last layer is as large as the reconstruction's (up to the 1e-4 that
    # keeps lambda finite, ~1% of this untrained discriminator's small gradient)
    assert out["adv_weight"] > 1
    assert grad_adv.norm().item() == pytest.approx(grad_rec.norm().item(), rel=0.03)
    assert not any(p.grad is not None for p in model.discriminator_parameters())
    with torch.no_grad():   # validation: no gradients, so no adversarial term and nothing added to the loss
        val = model.loss(x, y, step=0)
    assert val["adv_weight"] == 0 and val["loss"].item() == pytest.approx((val["recon"] + val["kl"]).item())


@pytest.mark.parametrize("stop_at", [3, 11])   # before and after adversarial_start (4); 8 steps per epoch
def test_exact_resume_of_both_networks_and_their_metrics(dataset, tmp_path, stop_at):
    a, b, straight, resumed = stop_and_resume(tiny(epochs=2, ema_decay=0.9), dataset, tmp_path, stop_at)
    assert any(k.startswith("discriminator.") for k in a.model_state)
    da, db = a.optimizer_states["discriminator"]["state"], b.optimizer_states["discriminator"]["state"]
    assert da.keys() == db.keys() and all(torch.equal(da[p]["exp_avg"], db[p]["exp_avg"]) for p in da)
    assert straight == resumed


def test_a_plain_vae_checkpoint_from_before_these_options_still_loads(dataset, tmp_path):
    cfg = tiny(VAEConfig(latent_dim=4, width=8), max_steps=2)
    list(Trainer(cfg, run_dir=tmp_path / "run", dataset=dataset).run())
    path = tmp_path / "run" / "checkpoints" / "last.safetensors"
    # Rewrite it as an older writer would have: its config has none of the hierarchical or adversarial fields.
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = dict(f.metadata())
    config = json.loads(metadata["config"])
    for key in ("stochastic_layers", "layer_channels", "adversarial_weight", "adversarial_start"):
        del config["model"][key]
    metadata["config"] = json.dumps(config)
    old = tmp_path / "old.safetensors"
    save_file(tensors, str(old), metadata=metadata)
    loaded = load_model(old)
    assert loaded.config.model.stochastic_layers == 1 and loaded.config.model.adversarial_weight == 0
    assert loaded.model.latent_layers == (("z", 4),) and loaded.model.discriminator_parameters() == []
    assert loaded.model.sample(torch.tensor([1, 2])).shape == (2, 1, 16, 16)
    resumed = list(Trainer(cfg.replace(train=dataclasses.replace(cfg.train, max_steps=4)), resume=old,
                           dataset=dataset).run())
    assert resumed[-1].status == "completed" and resumed[-1].step == 4
