"""The conditional VAE: shapes, loss terms, sampling, likelihoods, and that it learns digits."""

import dataclasses
import math

import pytest
import torch

from core.config import DataConfig, VAEConfig
from core.data.datasets import DatasetMeta, load_dataset
from core.images import as_float
from core.models import build_model
from core.models.vae import ConditionalVAE

TINY = VAEConfig(latent_dim=4, width=8)


def meta(channels=1, size=16, classes=10):
    return DatasetMeta("test", tuple(str(i) for i in range(classes)), channels, size)


@pytest.mark.parametrize("channels,size", [(1, 16), (3, 16), (1, 28), (3, 28), (1, 32), (3, 32), (1, 64)])
def test_shapes_for_channels_and_sizes(channels, size):
    torch.manual_seed(0)
    model = ConditionalVAE(TINY, meta(channels, size))
    x = torch.rand(3, channels, size, size)
    y = torch.tensor([0, 4, 9])
    mu, logvar = model.encode(x, y)
    assert mu.shape == logvar.shape == (3, 4)
    assert model.decode(mu, y).shape == x.shape
    rec = model.reconstruct(x, y)
    assert rec.shape == x.shape and rec.min() >= 0 and rec.max() <= 1
    assert model.sample(y).shape == x.shape
    assert model.kl_per_dim(x, y).shape == (4,)
    assert model.label_embedding(y).shape == (3, 4)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian", "discretized"])
def test_all_likelihoods_run_and_backprop(likelihood):
    torch.manual_seed(0)
    model = ConditionalVAE(dataclasses.replace(TINY, likelihood=likelihood), meta(3, 16))
    x = torch.randint(0, 256, (4, 3, 16, 16)).float() / 255
    out = model.loss(x, torch.tensor([1, 2, 3, 4]))
    assert all(torch.isfinite(v) for v in out.values())
    out["loss"].backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if likelihood == "discretized":
        # bits/dim of a barely trained model on uniform noise is near 8 (log2 256 bins), and it is -elbo in bits.
        assert out["bits_per_dim"].item() == pytest.approx(-out["elbo"].item() / (3 * 16 * 16 * math.log(2)))
        assert 6 < out["bits_per_dim"].item() < 12


def test_discretized_likelihood_is_a_distribution_over_256_bins():
    from core.models.vae import _discretized_logistic_nll

    bins = torch.arange(256).float().view(256, 1) / 255
    mean, log_scale = torch.full_like(bins, 0.3), torch.full_like(bins, -2.0)
    total = torch.exp(-_discretized_logistic_nll(bins, mean, log_scale)).sum().item()
    assert total == pytest.approx(1.0, abs=1e-3)


def test_elbo_terms_add_up_and_kl_is_nonnegative():
    torch.manual_seed(0)
    model = ConditionalVAE(dataclasses.replace(TINY, beta=2.5), meta())
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    out = model.loss(x, y)
    assert out["kl"].item() >= 0
    assert (model.kl_per_dim(x, y) >= 0).all()
    assert out["elbo"].item() == pytest.approx(-(out["recon"].item() + out["kl"].item()), rel=1e-6)
    assert out["loss"].item() == pytest.approx(out["recon"].item() + 2.5 * out["kl"].item(), rel=1e-5)
    dims = model.loss(x, y, with_kl_dims=True)["kl_dims"]
    assert torch.allclose(dims, model.kl_per_dim(x, y)) and dims.sum().item() == pytest.approx(out["kl"].item())


def test_kl_warmup_and_free_bits():
    torch.manual_seed(0)
    model = ConditionalVAE(dataclasses.replace(TINY, kl_warmup_steps=100), meta())
    x, y = torch.rand(8, 1, 16, 16), torch.randint(0, 10, (8,))
    torch.manual_seed(1)
    start = model.loss(x, y, step=0)
    torch.manual_seed(1)
    half = model.loss(x, y, step=50)
    assert start["beta"].item() == 0 and start["loss"].item() == pytest.approx(start["recon"].item())
    assert half["beta"].item() == pytest.approx(0.5)
    assert half["loss"].item() == pytest.approx(half["recon"].item() + 0.5 * half["kl"].item(), rel=1e-5)
    free = ConditionalVAE(dataclasses.replace(TINY, free_bits=5.0), meta())
    free.load_state_dict(model.state_dict())
    torch.manual_seed(1)
    out = free.loss(x, y, step=0)
    # Every dimension's KL of a fresh model is far below 5 nats, so the penalty is exactly 4 dims x 5 nats.
    assert out["loss"].item() == pytest.approx(out["recon"].item() + 4 * 5.0, rel=1e-5)
    assert out["kl"].item() < 4 * 5.0


def test_sampling_honours_labels_and_is_deterministic_by_seed():
    torch.manual_seed(0)
    model = ConditionalVAE(TINY, meta()).eval()
    labels = torch.tensor([0, 0, 3, 7])
    a = model.sample(labels, generator=torch.Generator().manual_seed(5))
    b = model.sample(labels, generator=torch.Generator().manual_seed(5))
    c = model.sample(labels, generator=torch.Generator().manual_seed(6))
    assert a.shape == (4, 1, 16, 16) and torch.equal(a, b) and not torch.equal(a, c)
    # The same z with another label gives another image: the label reaches the decoder.
    z = torch.randn(4, 4)
    assert not torch.allclose(model.sample(labels, z=z), model.sample(torch.tensor([1, 1, 1, 1]), z=z))
    with torch.no_grad():
        mean_image = model.decode(torch.zeros(1, 4), labels[:1])[0]
    assert torch.allclose(model.sample(labels, temperature=0.0)[0], mean_image, atol=1e-6)


def test_unconditional_and_concat_conditioning():
    model = build_model(dataclasses.replace(TINY, conditional=False), meta())
    assert model.num_classes == 0
    out = model.loss(torch.rand(2, 1, 16, 16), None)
    assert torch.isfinite(out["loss"])
    assert model.sample(torch.zeros(5, dtype=torch.long)).shape == (5, 1, 16, 16)
    assert model.label_embedding(None, batch=3).abs().sum() == 0
    concat = build_model(dataclasses.replace(TINY, conditioning="concat"), meta())
    assert torch.isfinite(concat.loss(torch.rand(2, 1, 16, 16), torch.tensor([1, 2]))["loss"])



@pytest.mark.parametrize("mode", ["bias", "film"])
def test_stage_labels_start_as_the_study_model_and_learn_a_per_stage_label_path(mode):
    torch.manual_seed(0)
    plain = ConditionalVAE(TINY, meta())
    torch.manual_seed(0)
    staged = ConditionalVAE(dataclasses.replace(TINY, stage_labels=mode), meta())
    assert len(staged.dec_stage_label) == TINY.stages
    # Zero-initialised label path: at the start it decodes exactly like the study's model (label only via z).
    missing, unexpected = staged.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("dec_stage_label.") for k in missing)
    z, y = torch.randn(4, 4), torch.tensor([0, 3, 5, 9])
    assert torch.allclose(staged.decode(z, y), plain.decode(z, y))
    # The label path gets gradients and, once non-zero, the label changes the image even with e(y) removed from z.
    out = staged.loss(torch.rand(4, 1, 16, 16), y)
    out["loss"].backward()
    assert all(e.weight.grad is not None and e.weight.grad.abs().sum() > 0 for e in staged.dec_stage_label)
    with torch.no_grad():
        for e in staged.dec_stage_label:
            e.weight.normal_()
        staged.dec_label[1][-1].weight.zero_()
        staged.dec_label[1][-1].bias.zero_()
    assert staged.label_embedding(y).abs().sum() == 0
    assert not torch.allclose(staged.decode(z, y), staged.decode(z, torch.tensor([1, 1, 1, 1])))
    # An unconditional model ignores the option.
    assert build_model(dataclasses.replace(TINY, stage_labels=mode, conditional=False), meta()).stage_labels == "none"

def test_residual_off_like_the_study():
    model = ConditionalVAE(dataclasses.replace(TINY, residual=False), meta())
    assert not any(b.residual for b in model.modules() if hasattr(b, "residual"))
    assert torch.isfinite(model.loss(torch.rand(2, 1, 16, 16), torch.tensor([1, 2]))["loss"])


def test_loss_falls_on_digits():
    ds = load_dataset(DataConfig("digits", image_size=16))
    torch.manual_seed(0)
    model = ConditionalVAE(VAEConfig(latent_dim=8, width=8), ds.meta)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    x_val, y_val = as_float(ds.val.images), ds.val.labels

    def val_loss():
        torch.manual_seed(1)
        with torch.no_grad():
            return model.loss(x_val, y_val)["loss"].item()

    before = val_loss()
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):   # 3 epochs of 41 steps
        for xb, yb in ds.train.batches(32, shuffle=True, generator=gen):
            loss = model.loss(as_float(xb), yb)["loss"]
            opt.zero_grad()
            loss.backward()
            opt.step()
    after = val_loss()
    assert after < 0.75 * before, (before, after)
