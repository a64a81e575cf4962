"""Models configure their own optimisers (nanoGPT's `configure_optimizers`) and the Trainer steps what it is given; the
gradient norm is in every step record; `grad_skip` skips a gradient spike and the run goes on.

A toy model kind defined here (a linear autoencoder trained by SGD, with a critic trained by an objective and an SGD of
its own) trains through the unchanged Trainer on the bundled digits: `build_model` is the one thing swapped."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from resume_check import stop_and_resume
from safetensors import safe_open
from torch import nn

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.images import as_float
from core.models import build_model
from core.models.optimizers import ExtraObjective, Optimizers
from core.training import trainer as trainer_module
from core.training.events import LogMessage, StepMetrics, decode_record
from core.training.trainer import Trainer, batch_order_generator

DATA = DataConfig("digits", image_size=16, per_class=12)
BATCH = 16
MAIN_LR, CRITIC_LR = 0.05, 0.1


class ToyAutoencoder(nn.Module):
    """A model kind the Trainer has never heard of: its own optimisers (SGD, not the default Adam), a critic with an
    objective of its own that the EMA copies rather than averages, and a loss that spikes at `spike_at`."""

    kind = "toy"

    def __init__(self, meta, spike_at: int = -1) -> None:
        super().__init__()
        self.num_classes, self.class_names = meta.num_classes, tuple(meta.class_names)
        self.channels, self.image_size = meta.channels, meta.image_size
        pixels = meta.channels * meta.image_size ** 2
        self.encoder, self.decoder = nn.Linear(pixels, 4), nn.Linear(4, pixels)
        self.critic = nn.Linear(pixels, 1)
        self.spike_at = spike_at

    def loss(self, x, y, *, step=0):
        flat = x.flatten(1)
        mse = F.mse_loss(self.decoder(self.encoder(flat)), flat)
        scale = 1e4 if step == self.spike_at else 1.0   # a gradient spike, for grad_skip
        return {"loss": scale * mse, "mse": mse.detach()}

    def critic_loss(self, x, y, *, step=0):
        return {"critic": (self.critic(x.flatten(1)).mean() - 1.0) ** 2}

    def sample(self, labels, *, generator=None):
        return torch.zeros(len(labels), self.channels, self.image_size, self.image_size)

    def autoencoder_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def configure_optimizers(self, train_cfg):
        critic = torch.optim.SGD(self.critic.parameters(), lr=CRITIC_LR, momentum=0.9)   # state to checkpoint
        return Optimizers(torch.optim.SGD(self.autoencoder_parameters(), lr=MAIN_LR),
                          extra=(ExtraObjective("critic", critic, self.critic_loss, "critic"),),
                          averaged=tuple(self.autoencoder_parameters()))


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATA)


def tiny(model=None, **train) -> Config:
    base = dict(epochs=2, batch_size=BATCH, log_every=1, device="cpu", seed=3, preview_every=0)
    base.update(train)
    return Config(DATA, model or VAEConfig(latent_dim=4, width=8), TrainConfig(**base))


@pytest.fixture
def toy_kind(monkeypatch):
    """Swap the Trainer's model factory for the toy; returns the list of toys built (with their initial weights)."""
    built = []

    def build(model_cfg, meta):
        toy = ToyAutoencoder(meta, spike_at=build.spike_at)
        built.append((toy, copy.deepcopy(toy.state_dict())))
        return toy

    build.spike_at = -1
    monkeypatch.setattr(trainer_module, "build_model", build)
    return build, built


def first_batch(dataset, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    xb, yb = next(iter(dataset.train.batches(BATCH, shuffle=True, generator=batch_order_generator(seed, 1),
                                             flip=False)))
    return as_float(xb), yb


def test_a_model_kind_with_its_own_optimisers_trains_through_the_trainer(dataset, toy_kind):
    _, built = toy_kind
    trainer = Trainer(tiny(max_steps=1, ema_decay=0.5), dataset=dataset)
    events = list(trainer.run())
    assert events[-1].status == "completed", events[-1]
    (toy, initial), = built
    assert trainer.model is toy and set(trainer.optimizers.named()) == {"model", "critic"}
    assert isinstance(trainer.optimizers.model, torch.optim.SGD)

    # One SGD step of each optimiser at its own learning rate (not train.lr): the weights are what the hand computes.
    by_hand = ToyAutoencoder(dataset.meta)
    by_hand.load_state_dict(initial)
    x, y = first_batch(dataset, seed=3)
    (by_hand.loss(x, y)["loss"] + by_hand.critic_loss(x, y)["critic"]).backward()
    for (name, p), q in zip(toy.named_parameters(), by_hand.parameters(), strict=True):
        lr = CRITIC_LR if name.startswith("critic") else MAIN_LR
        torch.testing.assert_close(p.detach(), q.detach() - lr * q.grad, rtol=0, atol=1e-6)
    # The EMA averages what the model chose (the autoencoder) and copies the rest (the critic).
    ema = trainer.ema.module
    torch.testing.assert_close(ema.encoder.weight, 0.5 * initial["encoder.weight"] + 0.5 * toy.encoder.weight.detach())
    assert torch.equal(ema.critic.weight, toy.critic.weight)
    # The critic's term is logged beside the model's, and the gradient norm is the autoencoder's alone.
    step = next(e for e in events if isinstance(e, StepMetrics))
    assert set(step.metrics) == {"loss", "mse", "critic"}
    autoencoder_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(q.grad) for q in
                                                             by_hand.autoencoder_parameters()]))
    assert step.grad_norm == pytest.approx(float(autoencoder_norm), rel=1e-5)


def test_grad_norm_is_in_every_step_record_and_is_the_norm_of_the_first_step(dataset, tmp_path):
    cfg = tiny(max_steps=6)
    events = list(Trainer(cfg, run_dir=tmp_path, dataset=dataset).run())
    assert events[-1].status == "completed"
    steps = [e for e in events if isinstance(e, StepMetrics)]
    assert [e.step for e in steps] == [1, 2, 3, 4, 5, 6]
    # By hand: the same seed, the same model, the same first batch; the VAE's noise comes from the same RNG state.
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model, dataset.meta)
    x, y = first_batch(dataset, cfg.train.seed)
    model.loss(x, y, step=0)["loss"].backward()
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in model.parameters()
                                                 if p.grad is not None]))
    assert steps[0].grad_norm == pytest.approx(float(norm), rel=1e-5)
    # Every step record in metrics.jsonl carries it (decoded by its declared type), and none was skipped.
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    decoded = [decode_record(r) for r in records if r["type"] == "step"]
    assert len(decoded) == 6 and all(d.grad_norm > 0 and d.skipped_steps == 0 for d in decoded)
    assert [d.grad_norm for d in decoded] == [e.grad_norm for e in steps]


def test_a_step_record_from_before_grad_norm_still_reads():
    old = {"type": "step", "step": 10, "epoch": 1, "metrics": {"loss": 1.5}, "lr": 1e-3, "images_per_s": 900.0,
           "eta_s": 3.0, "progress": 0.1, "time": 1.7e9}
    event = decode_record(old)
    assert event.grad_norm is None and event.skipped_steps == 0 and event.metrics == {"loss": 1.5}


def test_grad_skip_skips_a_spike_and_the_run_goes_on(dataset, toy_kind, tmp_path):
    build, built = toy_kind
    build.spike_at = 2   # the third step's loss (and gradient) is 10,000 times the others'
    trainer = Trainer(tiny(max_steps=6, grad_skip=50.0), run_dir=tmp_path, dataset=dataset)
    weights, skipped_at = {}, None
    for ev in trainer.run():
        if isinstance(ev, StepMetrics):
            weights[ev.step] = copy.deepcopy(trainer.model.state_dict())
        if isinstance(ev, LogMessage) and ev.level == "warning":
            skipped_at = ev.step
            assert "above train.grad_skip 50" in ev.message
            # Nothing moved: neither the model's weights nor the critic's (a skipped step is skipped for all).
            assert all(torch.equal(v, weights[2][k]) for k, v in trainer.model.state_dict().items())
    assert skipped_at == 2 and trainer.progress.skipped_steps == 1 and ev.status == "completed" and ev.step == 6
    # Below the threshold the steps were applied: no record for the skipped step, the later ones count it.
    assert sorted(weights) == [1, 2, 4, 5, 6]
    assert not torch.equal(weights[4]["encoder.weight"], weights[2]["encoder.weight"])
    records = [decode_record(json.loads(line)) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    counts = {r.step: r.skipped_steps for r in records if isinstance(r, StepMetrics)}
    assert counts == {1: 0, 2: 0, 4: 1, 5: 1, 6: 1}
    assert all(r.grad_norm < 50 for r in records if isinstance(r, StepMetrics))


def test_grad_skip_is_off_by_default(dataset, toy_kind):
    build, _ = toy_kind
    build.spike_at = 2
    trainer = Trainer(tiny(max_steps=4), dataset=dataset)
    steps = [e for e in trainer.run() if isinstance(e, StepMetrics)]
    assert [e.step for e in steps] == [1, 2, 3, 4] and trainer.progress.skipped_steps == 0
    assert steps[2].grad_norm > 1000 * steps[1].grad_norm   # the spike was taken, and its norm logged


def test_a_model_kinds_own_optimisers_resume_exactly_by_name(dataset, toy_kind, tmp_path):
    cfg = tiny(epochs=2, ema_decay=0.9, log_every=2)
    a, b, straight, resumed = stop_and_resume(cfg, dataset, tmp_path, stop_at=4)
    assert straight == resumed and set(a.optimizer_states) == {"model", "critic"}
    momentum = a.optimizer_states["critic"]["state"], b.optimizer_states["critic"]["state"]
    assert momentum[0] and all(torch.equal(momentum[0][p]["momentum_buffer"], momentum[1][p]["momentum_buffer"])
                               for p in momentum[0])
    with safe_open(str(b.path), framework="pt") as f:   # saved under its name: "optim_critic" beside "optim"
        assert {k for k in f.metadata() if k.startswith("optim")} == {"optim", "optim_critic"}


def test_a_grad_skip_below_every_step_s_norm_fails_the_run_and_says_so(dataset, toy_kind):
    _, built = toy_kind
    trainer = Trainer(tiny(max_steps=10, grad_skip=1e-9, max_bad_steps=3), dataset=dataset)
    end = list(trainer.run())[-1]
    assert end.status == "failed" and end.step == 3 and trainer.progress.skipped_steps == 3
    assert "3 steps in a row had a gradient norm above train.grad_skip 1e-09" in end.reason
    assert "raise train.grad_skip" in end.reason
    (toy, initial), = built   # nothing was ever applied
    assert all(torch.equal(v, initial[k]) for k, v in toy.state_dict().items())
