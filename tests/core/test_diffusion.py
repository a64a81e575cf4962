"""The diffusion model: trains through the generic Trainer (loss falls, previews sample), samplers honour labels and
generators, guidance and cancel work, the process takes any denoiser network it is given, and the bundled digits model
draws the digits it is asked for."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.config import Config, DataConfig, DiffusionConfig, TrainConfig
from core.images import as_float
from core.models import build_model
from core.models.diffusion import ConditionalDiffusion, build_unet
from core.paths import bundled_model
from core.training.checkpoint import load_model
from core.training.events import Preview, RunEnded, StepMetrics
from core.training.trainer import Trainer


@pytest.fixture(scope="module")
def tiny(digits_dataset):
    torch.manual_seed(0)
    return build_model(DiffusionConfig(base_channels=8, timesteps=100, sample_steps=5), digits_dataset.meta).eval()


def test_tiny_diffusion_trains_through_the_trainer_and_its_loss_falls(digits_dataset, tmp_path):
    cfg = Config(DataConfig("digits", image_size=16, per_class=30),
                 DiffusionConfig(base_channels=8, timesteps=100, sample_steps=4),
                 TrainConfig(epochs=100, max_steps=40, batch_size=32, lr=3e-3, log_every=5, preview_every=100,
                             ema_decay=0.9, device="cpu"))
    events = list(Trainer(cfg, run_dir=tmp_path / "run").run())
    losses = [e.metrics["loss"] for e in events if isinstance(e, StepMetrics)]
    assert isinstance(events[-1], RunEnded) and events[-1].status == "completed", events[-1]
    assert len(losses) == 8
    assert np.mean(losses[-2:]) < 0.5 * losses[0], losses     # noise-prediction MSE starts near 1
    previews = [e for e in events if isinstance(e, Preview)]
    assert previews and previews[-1].samples.dtype == np.uint8 and previews[-1].samples.shape[1:] == (16, 16, 1)
    loaded = load_model(tmp_path / "run" / "checkpoints" / "last.safetensors")
    assert loaded.model.kind == "diffusion" and loaded.config.model.base_channels == 8


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm++"])
def test_samplers_shape_range_and_determinism(tiny, sampler):
    labels = torch.tensor([0, 3, 7, 9])
    a = tiny.sample(labels, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(1))
    b = tiny.sample(labels, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(1))
    c = tiny.sample(labels, steps=4, sampler=sampler, generator=torch.Generator().manual_seed(2))
    assert a.shape == (4, 1, 16, 16) and float(a.min()) >= 0 and float(a.max()) <= 1
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_labels_and_guidance_change_the_output(tiny):
    def g():
        return torch.Generator().manual_seed(3)

    with torch.no_grad():   # make the label embedding matter in the untrained net
        tiny.unet.class_embedding.weight.mul_(50)
    try:
        a = tiny.sample(torch.tensor([1, 1]), steps=3, sampler="ddim", generator=g())
        b = tiny.sample(torch.tensor([2, 2]), steps=3, sampler="ddim", generator=g())
        c = tiny.sample(torch.tensor([1, 1]), steps=3, sampler="ddim", guidance=4.0, generator=g())
    finally:
        with torch.no_grad():
            tiny.unet.class_embedding.weight.div_(50)
    assert not torch.allclose(a, b) and not torch.allclose(a, c)


def test_sample_progress_and_cancel(tiny):
    seen = []
    out = tiny.sample(torch.arange(3), steps=5, sampler="dpm++", progress=lambda d, t: seen.append((d, t)))
    assert out is not None and seen == [(i, 5) for i in range(1, 6)]
    calls = []
    stopped = tiny.sample(torch.arange(3), steps=5, should_stop=lambda: calls.append(1) or len(calls) >= 2)
    assert stopped is None and len(calls) == 2


def test_bad_sampler_or_steps_is_a_user_error(tiny):
    from core.errors import UserError

    with pytest.raises(UserError, match="sampler"):
        tiny.sample(torch.arange(2), sampler="euler")
    with pytest.raises(UserError, match="steps"):
        tiny.sample(torch.arange(2), steps=10_000)


def test_repaint_keeps_known_pixels_exactly(tiny, digits_dataset):
    x = as_float(digits_dataset.test.images[:3])
    mask = torch.zeros(3, 1, 16, 16)
    mask[:, :, 4:12, 4:12] = 1
    out = tiny.restore(x * (1 - mask) + 0.5 * mask, strength=1.0, mask=mask, steps=10,
                       generator=torch.Generator().manual_seed(0))
    known = mask.expand_as(x) < 0.5
    assert torch.equal(out[known], x[known])
    assert not torch.equal(out[~known], torch.full_like(out[~known], 0.5))


def test_bundled_model_draws_the_requested_digits(digits_dataset):
    """A classifier trained on the real digits agrees with the labels the bundled model was asked for."""
    from sklearn.linear_model import LogisticRegression

    path = bundled_model("diffusion")
    assert path is not None, "resources/digits-diffusion.safetensors is missing; run `make default-model`"
    loaded = load_model(path)
    train = as_float(digits_dataset.train.images).flatten(1).numpy()
    clf = LogisticRegression(max_iter=500).fit(train, digits_dataset.train.labels.numpy())
    labels = torch.arange(10).repeat(5)
    x = loaded.model.sample(labels, steps=20, sampler="dpm++", generator=torch.Generator().manual_seed(0))
    accuracy = float((clf.predict(x.flatten(1).numpy()) == labels.numpy()).mean())
    assert accuracy > 0.7, accuracy     # chance is 0.1


class TinyDenoiser(nn.Module):
    """Not a diffusers network: two convolutions with time and label embeddings, returning the noise as a tensor."""

    def __init__(self, channels: int, labels: int) -> None:
        super().__init__()
        self.conv_in, self.conv_out = nn.Conv2d(channels, 16, 3, padding=1), nn.Conv2d(16, channels, 3, padding=1)
        self.time, self.label = nn.Linear(1, 16), nn.Embedding(labels, 16)

    def forward(self, x, t, class_labels=None):
        cond = self.time(t.float()[:, None] / 100) + self.label(class_labels)
        return self.conv_out(F.silu(self.conv_in(x) + cond[:, :, None, None]))


def test_the_diffusion_process_takes_the_network_it_is_given(digits_dataset):
    cfg = DiffusionConfig(base_channels=8, timesteps=100, sample_steps=4)
    meta = digits_dataset.meta
    torch.manual_seed(0)
    net = TinyDenoiser(meta.channels, meta.num_classes + 1)   # one more label: "no label" (guidance)
    model = ConditionalDiffusion(net, cfg, meta)
    assert model.unet is net and set(model.state_dict()) == {f"unet.{k}" for k in net.state_dict()}
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    x, y = as_float(digits_dataset.train.images[:128]), digits_dataset.train.labels[:128]
    losses = []
    for _ in range(40):
        loss = model.loss(x, y)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5]), losses   # it learns through the process
    model.eval()
    labels = torch.tensor([0, 3, 7, 10])   # 10: no label
    a = model.sample(labels, guidance=2.0, generator=torch.Generator().manual_seed(1))
    b = model.sample(labels, guidance=2.0, generator=torch.Generator().manual_seed(1))
    assert a.shape == (4, 1, 16, 16) and 0 <= float(a.min()) and float(a.max()) <= 1 and torch.equal(a, b)
    with pytest.raises(TypeError, match="denoiser network"):
        ConditionalDiffusion(lambda x, t: x, cfg, meta)


def test_the_factory_builds_the_unet_and_passes_it(digits_dataset):
    """build_model's diffusion model is the process around build_unet's network: same weights, same names (so
    checkpoints written before the network was passed in load as they did)."""
    cfg = DiffusionConfig(base_channels=8, timesteps=100)
    torch.manual_seed(5)
    built = build_model(cfg, digits_dataset.meta)
    torch.manual_seed(5)
    by_hand = ConditionalDiffusion(build_unet(cfg, digits_dataset.meta), cfg, digits_dataset.meta)
    a, b = built.state_dict(), by_hand.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert type(built.unet).__name__ == "UNet2DModel"
