"""Learned priors over a VAE's latents (core/latent/diffusion_prior.py), the one sampler interface and registry
(core/latent/samplers.py), and the prior's holes (core/evaluation/holes.py): on synthetic latents whose answer is
known, and on the bundled digits VAE through evaluate() and the CLI."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch
from PIL import Image

from core import cli
from core.config import VAEConfig, preset
from core.errors import UserError
from core.evaluation import evaluate as metrics
from core.evaluation.holes import hole_score
from core.latent import diffusion_prior as dp
from core.latent.encoding import encode_split
from core.latent.samplers import SAMPLERS, MixtureSampler, PriorSampler, make_sampler
from core.models import build_model
from core.paths import bundled_model
from core.training.checkpoint import load_model, save_checkpoint

QUICK = dp.DiffusionPriorSettings(width=64, blocks=2, train_steps=300, batch_size=128, lr=3e-3)


# ------------------------------------------------------------------------------------------------ hole score
def test_hole_score_is_zero_on_the_data_and_one_far_from_it():
    rng = np.random.default_rng(0)
    data = rng.standard_normal((200, 6)).astype(np.float32)
    labels = np.arange(200) % 2
    on = hole_score(data, labels, data[:50] + 1e-4, labels[:50])
    assert on.score == 0.0 and on.per_class == (0.0, 0.0)
    far = hole_score(data, labels, data[:50] + 50.0, labels[:50])
    assert far.score == 1.0
    # a class's samples are judged against that class's data only: class 1's samples on class 0's cloud are in holes
    shifted = np.where(labels[:, None] == 0, data, data + 20.0).astype(np.float32)
    mixed = hole_score(shifted, labels, shifted[labels == 0][:40], np.repeat([0, 1], 20))
    assert mixed.per_class == (0.0, 1.0) and mixed.score == 0.5
    # a class with k or fewer data points has no score
    few = hole_score(data[:11], labels[:11], data[:4], np.array([0, 1, 0, 1]), k=5)
    assert few.per_class[0] == 0.0 and np.isnan(few.per_class[1]) and few.score == 0.0


def test_the_prior_of_a_shrunken_cloud_lands_in_holes():
    """Posterior means shrink towards 0 (KL pressure): N(0, I) draws mostly miss them; draws from the cloud do not."""
    rng = np.random.default_rng(1)
    data = 0.3 * rng.standard_normal((500, 8))
    prior = hole_score(data, None, rng.standard_normal((500, 8)), None).score
    matched = hole_score(data, None, 0.3 * rng.standard_normal((500, 8)), None).score
    assert prior > 0.9 and matched < 0.2


# ------------------------------------------------------------------------------------------------ diffusion prior
def test_the_diffusion_prior_learns_each_class_s_two_clusters():
    """Class 0: two clusters at (±3, 0); class 1: two at (0, ±3). A Gaussian cannot match this; the prior must."""
    rng = np.random.default_rng(0)
    n = 2000
    labels = np.arange(n) % 2
    side = np.where(rng.random(n) < 0.5, -3.0, 3.0)
    centres = np.where(labels[:, None] == 0, np.stack([side, 0 * side], 1), np.stack([0 * side, side], 1))
    x = (centres + 0.3 * rng.standard_normal((n, 2))).astype(np.float32)
    prior = dp.fit_to_latents(x, labels, 2, QUICK)
    for c, axis in ((0, 0), (1, 1)):
        z = prior.sample(torch.full((400,), c), torch.Generator().manual_seed(c)).numpy()
        on_axis = np.abs(z[:, axis])
        assert np.abs(on_axis.mean() - 3.0) < 0.4                   # both clusters, not their mean at 0
        assert np.abs(z[:, 1 - axis]).mean() < 0.5                  # the other coordinate stays near 0
        assert 0.3 < (z[:, axis] > 0).mean() < 0.7                  # both modes, about equally
    hole = hole_score(x, labels, prior.sample(torch.tensor(labels[:400]), torch.Generator().manual_seed(5)),
                      labels[:400]).score
    assert hole < 0.2 and hole_score(x, labels, rng.standard_normal((400, 2)), labels[:400]).score > 0.5


def test_the_diffusion_prior_is_repeatable_and_saved_whole(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 3)).astype(np.float32) * 2 + 1
    settings = dp.DiffusionPriorSettings(width=32, blocks=1, train_steps=30, batch_size=64)
    a = dp.fit_to_latents(x, np.zeros(300), 0, settings, model_key="m1")
    b = dp.fit_to_latents(x, np.zeros(300), 0, settings, model_key="m1")
    draw = [p.sample(torch.zeros(8), torch.Generator().manual_seed(3)) for p in (a, b)]
    torch.testing.assert_close(draw[0], draw[1])
    sde = a.with_sampling(stochastic=True)     # SDE-DPM-Solver++: its step noise also comes from the generator
    draws = [sde.sample(torch.zeros(8), torch.Generator().manual_seed(3)) for _ in range(2)]
    torch.testing.assert_close(draws[0], draws[1])
    assert not torch.allclose(draws[0], draw[0])
    path = dp.save_prior(a, tmp_path / "prior.safetensors")
    again = dp.read_prior(path, expect_key="m1")
    torch.testing.assert_close(again.sample(torch.zeros(8), torch.Generator().manual_seed(3)), draw[0])
    with pytest.raises(UserError, match="fitted to another model"):
        dp.read_prior(path, expect_key="m2")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match="not a readable safetensors"):
        dp.read_prior(tmp_path / "junk.safetensors")
    with pytest.raises(UserError, match="train steps must be"):
        dp.DiffusionPriorSettings(train_steps=0).check()


def test_fitting_posterior_draws_widens_the_prior_by_the_posterior_spread():
    """Means at ±2 with posterior std 4: the aggregate posterior has std sqrt(4 + 16); posterior_scale 0.5 halves
    the draws' spread (sqrt(4 + 4)); the means alone have 2."""
    rng = np.random.default_rng(0)
    mu = np.where(rng.random((1000, 1)) < 0.5, -2.0, 2.0).astype(np.float32)
    logvar = np.full_like(mu, np.log(16.0))
    settings = dp.DiffusionPriorSettings(width=64, blocks=2, train_steps=300, batch_size=128, lr=3e-3)
    stds = {}
    for sampled, scale in ((False, 1.0), (True, 1.0), (True, 0.5)):
        prior = dp.fit_to_latents(mu, np.zeros(1000), 0, dataclasses.replace(
            settings, posterior_samples=sampled, posterior_scale=scale), logvar=logvar)
        stds[sampled, scale] = float(prior.sample(torch.zeros(2000), torch.Generator().manual_seed(0)).std())
    assert abs(stds[False, 1.0] - 2.0) < 0.25
    assert abs(stds[True, 1.0] - 20 ** 0.5) < 0.45 and abs(stds[True, 0.5] - 8 ** 0.5) < 0.3


def test_the_denoiser_s_dropout_trains_and_samples_repeatably():
    """Dropout acts while fitting only: a fitted prior samples the same z twice; bad values are one clear line."""
    with pytest.raises(UserError, match="dropout"):
        dp.DiffusionPriorSettings(dropout=1.0).check()
    with pytest.raises(UserError, match="posterior scale"):
        dp.DiffusionPriorSettings(posterior_scale=-1).check()
    mu = np.random.default_rng(0).normal(size=(200, 2)).astype(np.float32)
    settings = dp.DiffusionPriorSettings(width=32, blocks=1, train_steps=20, batch_size=64, dropout=0.3)
    prior = dp.fit_to_latents(mu, np.zeros(200), 0, settings)
    draws = [prior.sample(torch.zeros(50), torch.Generator().manual_seed(1)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1]) and prior.process.net.blocks[0].dropout.p == 0.3


def test_a_hierarchical_vae_s_top_layer_prior_leaves_the_layers_below_to_their_prior(digits_dataset):
    cfg = preset("digits").replace(model=VAEConfig(latent_dim=4, width=8, stochastic_layers=3, layer_channels=2))
    torch.manual_seed(0)
    model = build_model(cfg.model, digits_dataset.meta).eval()
    settings = dp.DiffusionPriorSettings(width=32, blocks=1, train_steps=20, top_layer=True)
    prior = dp.fit_diffusion_prior(model, digits_dataset.train, settings=settings)
    assert prior.fitted == 4 and prior.latent_dim == model.latent_dim > 4
    assert "top layer z1: 4 of" in prior.describe()
    z = prior.sample(torch.arange(10), torch.Generator().manual_seed(0), temperature=0.5)
    noise = torch.randn(10, model.latent_dim, generator=torch.Generator().manual_seed(0)) * 0.5
    torch.testing.assert_close(z[:, 4:], noise[:, 4:])               # the layers below: the prior's own draws
    assert not torch.allclose(z[:, :4], noise[:, :4])
    whole = dp.fit_diffusion_prior(model, digits_dataset.train, settings=dp.DiffusionPriorSettings(
        width=32, blocks=1, train_steps=20))
    assert whole.fitted == model.latent_dim


def test_the_fit_is_cached_per_snapshot_in_memory_and_on_disk(bundled_vae, digits_dataset, monkeypatch):
    first = dp.fit_diffusion_prior(bundled_vae.model, digits_dataset.train, settings=QUICK, loaded=bundled_vae)
    monkeypatch.setattr(dp, "train_process", lambda *a, **k: pytest.fail("the prior was fitted again"))
    assert dp.fit_diffusion_prior(bundled_vae.model, digits_dataset.train, settings=QUICK,
                                  loaded=bundled_vae).process is first.process          # the same snapshot
    other = load_model(bundled_vae.path)                                              # a new object: the disk
    second = dp.fit_diffusion_prior(other.model, digits_dataset.train, settings=QUICK, loaded=other)
    assert second.process is not first.process
    g = torch.Generator
    torch.testing.assert_close(second.sample(torch.arange(10), g().manual_seed(1)),
                               first.sample(torch.arange(10), g().manual_seed(1)))


def _two_elongated_classes(n: int = 1200) -> tuple[np.ndarray, np.ndarray]:
    """Class 0 at (2, 0, 0) with standard deviations (1, 0.5, 2); class 1 at (-2, 1, 0), correlated in its first two
    coordinates."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % 2
    a = rng.standard_normal((n, 3)) * [1.0, 0.5, 2.0] + [2.0, 0.0, 0.0]
    b = rng.standard_normal((n, 3)) @ np.array([[1.0, 0.8, 0.0], [0.0, 0.6, 0.0], [0.0, 0.0, 0.7]]) + [-2.0, 1.0, 0.0]
    return np.where(labels[:, None] == 0, a, b).astype(np.float32), labels


def test_spread_matching_gives_each_class_s_draws_the_data_s_spread_and_keeps_their_shape(tmp_path):
    """Guidance 4 pushes the draws apart (each class's spread far from the data's); matched, each class's draws take
    the training latents' class spread (trace of the covariance), keep their own shape and centre, and keep all of
    it through a saved file."""
    x, labels = _two_elongated_classes()
    prior = dp.fit_to_latents(x, labels, 2, QUICK, model_key="m")
    pushed = prior.with_sampling(guidance=4.0)
    matched = prior.with_sampling(guidance=4.0, match_spread=True)
    assert "spread matched" in matched.describe() and "spread" not in pushed.describe()
    for c in (0, 1):
        want = np.trace(np.cov(x[labels == c].astype(np.float64), rowvar=False))
        draws = {name: p.sample(torch.full((3000,), c), torch.Generator().manual_seed(10 + c)).double().numpy()
                 for name, p in (("pushed", pushed), ("matched", matched))}
        covs = {name: np.cov(d, rowvar=False) for name, d in draws.items()}
        assert abs(np.trace(covs["pushed"]) / want - 1) > 0.25, c
        assert abs(np.trace(covs["matched"]) / want - 1) < 0.06, c   # 1,000 draws per class estimate the scale
        shape = {name: cov / np.trace(cov) for name, cov in covs.items()}
        np.testing.assert_allclose(shape["matched"], shape["pushed"], atol=1e-6)
        np.testing.assert_allclose(draws["matched"].mean(0), draws["pushed"].mean(0), atol=0.05)
    g = torch.Generator
    first = matched.sample(torch.arange(6) % 2, g().manual_seed(3))
    torch.testing.assert_close(matched.sample(torch.arange(6) % 2, g().manual_seed(3)), first)   # repeatable
    again = dp.read_prior(dp.save_prior(matched, tmp_path / "prior.safetensors"), expect_key="m")
    torch.testing.assert_close(again.sample(torch.arange(6) % 2, g().manual_seed(3)), first)
    prior.class_spreads = None           # a file written before spread matching
    older = dp.read_prior(dp.save_prior(prior, tmp_path / "older.safetensors"))
    older.sample(torch.arange(4) % 2, g().manual_seed(0))                                      # still samples
    with pytest.raises(UserError, match="keeps no class spreads.*fit it again"):
        older.with_sampling(match_spread=True).sample(torch.arange(4) % 2, g().manual_seed(0))


def test_a_cached_fit_from_before_spread_matching_gets_its_class_spreads(bundled_vae, digits_dataset, monkeypatch):
    settings = dataclasses.replace(QUICK, train_steps=40)
    fitted = dp.fit_diffusion_prior(bundled_vae.model, digits_dataset.train, settings=settings, loaded=bundled_vae)
    path = dp.prior_cache_path(dp.encoding_key(bundled_vae), "train", digits_dataset.train, settings)
    spreads = fitted.class_spreads
    fitted.class_spreads = None
    dp.save_prior(fitted, path)           # the cache as an older version left it
    monkeypatch.setattr(dp, "train_process", lambda *a, **k: pytest.fail("the prior was fitted again"))
    other = load_model(bundled_vae.path)
    read = dp.fit_diffusion_prior(other.model, digits_dataset.train, settings=dataclasses.replace(
        settings, match_spread=True), loaded=other)
    np.testing.assert_allclose(read.class_spreads, spreads, rtol=1e-5)
    assert read.class_spreads.shape == (10,) and dp.read_prior(path).class_spreads is not None   # written back
    assert read.sample(torch.arange(10), torch.Generator().manual_seed(0)).shape == (10, 24)


# ------------------------------------------------------------------------------------------------ samplers
def test_the_registry_names_every_source_and_refuses_wrong_settings(bundled_vae):
    assert list(SAMPLERS) == ["prior", "density", "diffusion-prior"]
    with pytest.raises(UserError, match="unknown source of z 'gmm'"):
        make_sampler("gmm")
    with pytest.raises(UserError, match="--from prior does not take components"):
        make_sampler("prior", components=3)
    with pytest.raises(UserError, match="not been fitted"):
        MixtureSampler().sample(torch.zeros(2))
    prior = make_sampler("prior").fit(bundled_vae)
    z = prior.sample(torch.arange(4), torch.Generator().manual_seed(0), temperature=0.5)
    torch.testing.assert_close(z, 0.5 * torch.randn(4, 24, generator=torch.Generator().manual_seed(0)))


def test_drawing_the_prior_s_z_in_evaluation_keeps_its_images(bundled_vae):
    """evaluate() now draws the prior's z itself (for the hole score): the images must be those model.sample draws."""
    model = bundled_vae.model
    kept: list[torch.Tensor] = []
    a, _ = metrics.class_samples(model, 10, 3, torch.Generator().manual_seed(4), latents_out=kept)
    b, _ = metrics.class_samples(model, 10, 3, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a, b)
    assert torch.cat(kept).shape == (30, 24)


def test_holes_close_from_the_prior_to_the_mixture_and_the_diffusion_prior(bundled_vae, digits_dataset):
    judge = metrics.judge_for(bundled_vae, digits_dataset)
    test = encode_split(bundled_vae.model, digits_dataset.test)
    encoded = (test.mu, test.labels)
    scores = {}
    for name, sampler in (("prior", PriorSampler()), ("density", MixtureSampler()),
                          ("diffusion-prior", make_sampler("diffusion-prior", settings=QUICK))):
        sampler.fit(bundled_vae, digits_dataset)
        scores[name] = metrics.source_metrics(bundled_vae.model, judge, digits_dataset.test.images, 10, 30,
                                              latent_sampler=sampler.sample, data_latents=encoded)
    assert scores["prior"]["hole_score"] > 0.8
    for name in ("density", "diffusion-prior"):
        assert scores[name]["hole_score"] < 0.3 and len(scores[name]["hole_score_per_class"]) == 10
        assert scores[name]["conditional_accuracy"] > 0.9
        assert scores[name]["fid_like"] < scores["prior"]["fid_like"]


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_samples_and_evaluates_from_the_diffusion_prior(capsys, tmp_path, bundled_vae):
    path, kept = str(bundled_vae.path), tmp_path / "prior.safetensors"
    out = tmp_path / "grid.png"
    assert cli.main(["sample", path, "--from", "diffusion-prior", "--prior-train-steps", "300", "--prior", str(kept),
                     "--n", "3", "--steps", "10", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "z from diffusion prior" in printed and "DPM-Solver++ 10 steps" in printed and kept.is_file()
    assert Image.open(out).size == (3 * 16, 10 * 16)
    assert cli.main(["sample", path, "--from", "diffusion-prior", "--prior", str(kept), "--match-spread", "--n", "3",
                     "--steps", "10", "--out", str(out)]) == 0       # the kept fit, its draws spread-matched
    assert "spread matched to the data's classes" in capsys.readouterr().out
    assert cli.main(["sample", path, "--from", "diffusion-prior", "--prior-per-dim", "--prior-train-steps", "20",
                     "--n", "2", "--steps", "5", "--out", str(out)]) == 0
    assert "per-dimension standardised" in capsys.readouterr().out
    assert cli.main(["eval", path, "--from", "all", "--prior-train-steps", "300", "--iwae-k", "0",
                     "--samples-per-class", "20", "--json", "--quiet"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert "diffusion prior" in result["latent_diffusion_prior"] and "GMM" in result["latent_density"]
    assert result["hole_score"] > 0.8 > 0.3 > result["diffusion-prior_hole_score"]
    assert result["density_hole_score"] < 0.3 and result["diffusion-prior_conditional_accuracy"] > 0.9


def test_cli_refuses_a_prior_of_another_model_and_a_diffusion_checkpoint(capsys, tmp_path, bundled_vae,
                                                                         digits_dataset):
    path = str(bundled_vae.path)
    other_cfg = preset("digits").replace(model=VAEConfig(latent_dim=24, width=4, stages=1))
    other = tmp_path / "other.safetensors"
    save_checkpoint(other, model=build_model(other_cfg.model, digits_dataset.meta), config=other_cfg,
                    meta=digits_dataset.meta)
    kept = tmp_path / "prior.safetensors"
    assert cli.main(["sample", str(other), "--from", "diffusion-prior", "--prior-train-steps", "5", "--prior",
                     str(kept), "--out", str(tmp_path / "a.png")]) == 0
    capsys.readouterr()
    for argv, message in (
            (["sample", path, "--from", "diffusion-prior", "--prior", str(kept)], "fitted to another model"),
            (["eval", path, "--from", "diffusion-prior", "--prior", str(kept)], "fitted to another model"),
            (["sample", path, "--from", "diffusion-prior", "--prior", path], "is not a diffusion prior"),
            (["sample", str(bundled_model("diffusion")), "--from", "diffusion-prior"],
             "this checkpoint is a diffusion model"),
            (["sample", path, "--prior", str(kept)], "add --from diffusion-prior"),
            (["sample", path, "--from", "density", "--match-spread"], "add --from diffusion-prior"),
            (["eval", path, "--prior-per-dim"], "add --from diffusion-prior"),
            (["eval", path, "--from", "density", "--prior-train-steps", "3"], "add --from diffusion-prior"),
            (["sample", path, "--steps", "5"], "apply to diffusion models")):
        assert cli.main([*argv, "--out", str(tmp_path / "b.png")] if argv[0] == "sample" else argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err, (argv, err)
    assert not (tmp_path / "b.png").exists()
    # --top-layer on a one-layer VAE: the whole code, as without it
    assert cli.main(["sample", path, "--from", "density", "--top-layer", "--n", "2",
                     "--out", str(tmp_path / "c.png")]) == 0
