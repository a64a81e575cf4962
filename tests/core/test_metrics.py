"""core.evaluation on the real digits data: SSIM/PSNR, Fréchet distance, the judge, evaluate()."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from core.config import VAEConfig, preset
from core.evaluation import evaluate as metrics
from core.evaluation import frechet, image_quality
from core.evaluation import judge as classifier_mod
from core.images import as_float
from core.models import build_model
from core.training.checkpoint import LoadedModel


@pytest.fixture(scope="module")
def digits(digits_dataset):
    return digits_dataset


@pytest.fixture(scope="module")
def judge(digits):
    return metrics.get_classifier(digits.meta, digits)


def _noisy(x: torch.Tensor, sigma: float, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (x + sigma * torch.randn(x.shape, generator=g)).clamp(0, 1)


# ------------------------------------------------------------------------------------------------ SSIM / PSNR
def test_ssim_of_identical_images_is_one(digits):
    x = as_float(digits.test.images[:32])
    ssim, psnr = image_quality.ssim_psnr(x, x.clone())
    assert ssim == pytest.approx(1.0)
    assert psnr == image_quality.PSNR_CAP_DB  # identical pairs are capped, so the mean stays finite


def test_noise_lowers_ssim_and_psnr_monotonically(digits):
    x = as_float(digits.test.images[:32])
    results = [image_quality.ssim_psnr(x, _noisy(x, s)) for s in (0.3, 0.1, 0.03)]
    ssims, psnrs = zip(*results, strict=True)
    assert all(math.isfinite(p) for p in psnrs)
    assert all(s < 1.0 for s in ssims)
    assert ssims[0] < ssims[1] < ssims[2]   # less noise, more similar
    assert psnrs[0] < psnrs[1] < psnrs[2]


def test_uint8_numpy_and_float_tensor_inputs_agree(digits):
    x8 = digits.test.images[:8]
    y = _noisy(as_float(x8), 0.1)
    y8 = (y * 255).round().to(torch.uint8)
    a = image_quality.ssim_psnr(x8, y8)                                   # uint8 tensors (N, C, H, W)
    b = image_quality.ssim_psnr(x8.permute(0, 2, 3, 1).numpy(), y8.permute(0, 2, 3, 1).numpy())  # uint8 numpy NHWC
    c = image_quality.ssim_psnr(as_float(x8), as_float(y8))                # float tensors
    assert a == pytest.approx(b) and a == pytest.approx(c)


def test_rgb_images_use_channel_axis():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, 16, 16, generator=g)
    ssim_same, _ = image_quality.ssim_psnr(x, x)
    ssim_noisy, _ = image_quality.ssim_psnr(x, _noisy(x, 0.2))
    assert ssim_same == pytest.approx(1.0) and ssim_noisy < 0.9


# ------------------------------------------------------------------------------------------------ Fréchet distance
def test_frechet_distance_of_a_set_with_itself_is_zero_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(500, 16)) @ rng.normal(size=(16, 16))
    assert frechet.fid_like(feats, feats) == pytest.approx(0.0, abs=1e-6)
    near = frechet.fid_like(feats, feats + 0.5)
    far = frechet.fid_like(feats, feats + 2.0)
    assert near == pytest.approx(16 * 0.25, rel=1e-6)   # a pure mean shift adds |delta|^2
    assert far > near > 0


def test_frechet_distance_sees_a_change_of_spread_and_handles_singular_covariances():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(300, 8))
    assert frechet.fid_like(feats, 3 * feats) > frechet.fid_like(feats, 1.5 * feats) > 0.1
    dead = np.concatenate([feats, np.zeros((300, 4))], axis=1)     # ReLU features: dead units, singular covariance
    value = frechet.fid_like(dead, dead[::-1].copy())
    assert math.isfinite(value) and value == pytest.approx(0.0, abs=1e-6)


# ------------------------------------------------------------------------------------------------ the judge
def test_classifier_is_accurate_on_digits_and_reused_from_cache(digits, judge, monkeypatch):
    assert judge.test_accuracy >= 0.95
    assert judge.accuracy(digits.test.images, digits.test.labels) == pytest.approx(judge.test_accuracy)
    assert judge.path is not None and judge.path.is_file()
    assert judge.features(digits.test.images[:5]).shape == (5, classifier_mod.FEATURES)

    def no_training(*a, **k):
        raise AssertionError("the cached classifier should have been loaded, not retrained")

    monkeypatch.setattr(classifier_mod, "train_classifier", no_training)
    again = metrics.get_classifier(digits.meta, digits)
    assert again.path == judge.path
    assert torch.equal(again.predict(digits.test.images), judge.predict(digits.test.images))
    assert again.test_accuracy == pytest.approx(judge.test_accuracy)


class _ReplayModel(torch.nn.Module):
    """A stand-in generator that "samples" real test images of a class (offset by `wrong` classes)."""

    kind = "vae"

    def __init__(self, split, num_classes: int, wrong: int = 0) -> None:
        super().__init__()
        self.split, self.num_classes, self.wrong = split, num_classes, wrong

    def sample(self, labels, *, generator=None, **kw):
        out = []
        for c in labels.tolist():
            pool = torch.nonzero(self.split.labels == (c + self.wrong) % self.num_classes).flatten()
            out.append(as_float(self.split.images[pool[torch.randint(len(pool), (1,), generator=generator)]]))
        return torch.cat(out)


def test_conditional_accuracy_tells_right_from_wrong_classes(digits, judge):
    right = metrics.conditional_accuracy(_ReplayModel(digits.test, 10), judge, 20, torch.Generator().manual_seed(0))
    wrong = metrics.conditional_accuracy(_ReplayModel(digits.test, 10, wrong=3), judge, 20,
                                         torch.Generator().manual_seed(0))
    assert right >= 0.95
    assert wrong <= 0.05


def test_active_units_counts_dimensions_with_posterior_mean_variance_above_threshold():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(1000, 6, generator=g) * torch.tensor([1.0, 0.5, 0.2, 0.05, 0.01, 0.0])
    n, var = metrics.active_units(mu)
    assert n == 3          # variances 1, 0.25, 0.04 > 0.01; 0.0025, 0.0001, 0 are not
    assert var.shape == (6,)


# ------------------------------------------------------------------------------------------------ evaluate()
@pytest.fixture(scope="module")
def tiny_vae(digits):
    cfg = preset("digits")
    cfg = cfg.replace(model=VAEConfig(latent_dim=4, width=8, stages=2))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(cfg.model, digits.meta).eval()
    return LoadedModel(model, cfg, digits.meta, None, 0, 0, {})


def test_evaluate_vae_reports_consistent_terms(digits, judge, tiny_vae):
    seen = []
    result = metrics.evaluate(tiny_vae, digits, "test", iwae_k=8, n_per_class=5, classifier=judge,
                              progress=lambda d, t: seen.append((d, t)))
    assert result is not None
    assert result["n_images"] == len(digits.test)
    assert result["kl"] >= 0
    assert result["elbo"] == pytest.approx(-(result["recon"] + result["kl"]), rel=1e-6)
    dims = 1 * 16 * 16
    assert result["bits_per_dim"] == pytest.approx(-result["elbo"] / (dims * math.log(2)))
    assert "not comparable" in result["bits_per_dim_note"]
    # IWAE with k > 1 is a tighter bound than the ELBO: its NLL estimate is lower than -ELBO (up to noise).
    assert result["iwae_nll"] < -result["elbo"] + 1.0
    assert 0 <= result["active_units"] <= result["latent_dim"] == 4
    assert 0 <= result["ssim"] <= 1 and math.isfinite(result["psnr"])
    assert 0 <= result["conditional_accuracy"] <= 1 and result["n_samples"] == 50
    assert result["fid_like"] > 0
    assert seen and seen[-1][0] == seen[-1][1]   # progress reached its total
    # Repeatable: the same seed gives the same numbers, and the caller's RNG is left alone.
    state = torch.get_rng_state()
    again = metrics.evaluate(tiny_vae, digits, "test", iwae_k=8, n_per_class=5, classifier=judge)
    assert torch.equal(state, torch.get_rng_state())
    assert again["elbo"] == pytest.approx(result["elbo"]) and again["iwae_nll"] == pytest.approx(result["iwae_nll"])


def test_evaluate_iwae_with_one_sample_matches_the_elbo(digits, judge, tiny_vae):
    result = metrics.evaluate(tiny_vae, digits, "val", iwae_k=1, n_per_class=2, classifier=judge)
    # Both are single-sample estimates of -ELBO with different noise draws: they agree closely on average.
    assert result["iwae_nll"] == pytest.approx(-result["elbo"], rel=0.02)


def test_evaluate_stops_and_returns_none(digits, judge, tiny_vae):
    assert metrics.evaluate(tiny_vae, digits, should_stop=lambda: True, classifier=judge) is None


def test_evaluate_refuses_data_the_model_was_not_trained_on(digits, tiny_vae):
    from core.config import DataConfig
    from core.data.datasets import load_dataset
    from core.errors import UserError

    other = load_dataset(DataConfig(name="digits", image_size=8))
    with pytest.raises(UserError, match="trained on"):
        metrics.evaluate(tiny_vae, other)


def test_evaluate_diffusion_reports_what_applies(digits, judge):
    from core.config import DiffusionConfig

    cfg = preset("digits").replace(model=DiffusionConfig(base_channels=8, levels=1, timesteps=10, sample_steps=2))
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model(cfg.model, digits.meta).eval()
    loaded = LoadedModel(model, cfg, digits.meta, None, 0, 0, {})
    result = metrics.evaluate(loaded, digits, n_per_class=2, classifier=judge)
    assert result["model_kind"] == "diffusion"
    assert math.isfinite(result["loss"]) and result["loss"] > 0
    assert 0 <= result["conditional_accuracy"] <= 1 and result["n_samples"] == 20
    assert result["fid_like"] > 0
    for vae_only in ("elbo", "ssim", "iwae_nll", "active_units"):
        assert vae_only not in result


def test_a_model_trained_on_a_subset_is_judged_by_the_classifier_of_the_full_training_set(digits, judge, tiny_vae):
    from core.config import with_overrides
    from core.data.datasets import load_dataset

    cfg = tiny_vae.config.replace(data=with_overrides(tiny_vae.config.data, per_class=20))
    subset = load_dataset(cfg.data)
    assert len(subset.train) == 200 < len(digits.train)
    loaded = LoadedModel(tiny_vae.model, cfg, subset.meta, None, 0, 0, {})
    assert metrics.judge_for(loaded, subset).path == judge.path
