"""Corruptions hit their strength and keep shapes/ranges; every restorer returns valid images; inpainting keeps the
known pixels exactly; the batch evaluation gives its rows and files."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from core.config import DiffusionConfig, VAEConfig
from core.evaluation.image_quality import ssim_psnr_per_image
from core.images import as_float
from core.models import build_model
from core.restoration.benchmark import batch_evaluate, restore_row, write_csv, write_json
from core.restoration.classical import CLASSICAL, restore_classical
from core.restoration.corruptions import CORRUPTIONS, corrupt, forward_operator, observation
from core.restoration.learned import data_consistency, restore_diffusion, restore_vae, restore_vae_refined


@pytest.fixture(scope="module")
def clean(digits_dataset) -> torch.Tensor:
    return as_float(digits_dataset.test.images[:6])


@pytest.fixture(scope="module")
def tiny_vae(digits_dataset):
    torch.manual_seed(0)
    return build_model(VAEConfig(latent_dim=4, width=4, stages=2), digits_dataset.meta).eval()


@pytest.fixture(scope="module")
def tiny_diffusion(digits_dataset):
    torch.manual_seed(0)
    return build_model(DiffusionConfig(base_channels=8, timesteps=50), digits_dataset.meta).eval()


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_corruptions_keep_shape_and_range(clean, name):
    g = torch.Generator().manual_seed(0)
    x_c, mask = corrupt(clean, name, 0.3 if name != "blur" else 1.0, generator=g)
    assert x_c.shape == clean.shape and x_c.dtype == torch.float32
    assert float(x_c.min()) >= 0 and float(x_c.max()) <= 1
    assert not torch.equal(x_c, clean)
    if name.startswith("mask"):
        assert mask is not None and mask.shape == (clean.shape[0], 1, *clean.shape[2:])
        known = mask.expand_as(clean) < 0.5
        assert torch.equal(x_c[known], clean[known])
    else:
        assert mask is None


def test_gaussian_hits_sigma():
    x = torch.full((8, 1, 16, 16), 0.5)
    x_c, _ = corrupt(x, "gaussian", 0.1, generator=torch.Generator().manual_seed(1))   # 0.5 +- 5 sigma: no clipping
    assert abs(float((x_c - x).std()) - 0.1) < 0.01
    assert abs(float((x_c - x).mean())) < 0.01


def test_salt_pepper_hits_fraction():
    x = torch.full((4, 1, 32, 32), 0.5)
    x_c, _ = corrupt(x, "salt-pepper", 0.2, generator=torch.Generator().manual_seed(2))
    hit = (x_c != 0.5).float().mean()
    assert abs(float(hit) - 0.2) < 0.03
    assert abs(float((x_c == 1).float().mean()) - float((x_c == 0).float().mean())) < 0.03


def test_blur_and_low_light_and_downsample_do_what_they_say():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    blurred, _ = corrupt(x, "blur", 1.5, generator=None)
    # The spread of a blurred point is the kernel's sigma (second moment around the centre).
    w = blurred[0, 0] / blurred.sum()
    yy = torch.arange(16.0).view(-1, 1)
    var = float((w * (yy - 8) ** 2).sum())
    assert abs(var ** 0.5 - 1.5) < 0.1
    ramp = torch.linspace(0, 1, 256).view(1, 1, 16, 16)
    dark, _ = corrupt(ramp, "low-light", 0.5, generator=None)
    assert torch.allclose(dark, 0.5 * ramp ** 1.5)
    for name, f in (("downsample-x2", 2), ("downsample-x4", 4)):
        low, _ = corrupt(ramp, name, 0.0, generator=None)
        blocks = low.unfold(2, f, f).unfold(3, f, f)
        assert torch.equal(blocks.amax((-1, -2)), blocks.amin((-1, -2)))   # constant f x f blocks
        assert torch.allclose(low.mean(), ramp.mean(), atol=1e-6)           # area averaging keeps the mean


@pytest.mark.parametrize("name,fraction", [("mask-box", 0.25), ("mask-box", 0.5), ("mask-strokes", 0.2)])
def test_masks_hit_their_area(name, fraction):
    x = torch.rand(5, 1, 16, 16)
    _, mask = corrupt(x, name, fraction, generator=torch.Generator().manual_seed(3))
    cover = mask.flatten(1).mean(1)
    if name == "mask-box":
        assert torch.all((cover - fraction).abs() < 0.06), cover
    else:
        assert torch.all(cover >= fraction) and torch.all(cover < fraction + 0.2), cover


def test_corruption_is_deterministic_by_generator(clean):
    a, _ = corrupt(clean, "mask-strokes", 0.3, generator=torch.Generator().manual_seed(5))
    b, _ = corrupt(clean, "mask-strokes", 0.3, generator=torch.Generator().manual_seed(5))
    c, _ = corrupt(clean, "mask-strokes", 0.3, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _valid(out, like):
    assert out is not None and out.shape == like.shape
    assert torch.isfinite(out).all() and float(out.min()) >= 0 and float(out.max()) <= 1


@pytest.mark.parametrize("name", CORRUPTIONS)
def test_classical_restorers_return_valid_images(clean, name):
    x_c, mask = corrupt(clean, name, 0.3 if name != "blur" else 1.0, generator=torch.Generator().manual_seed(0))
    for method in CLASSICAL[name]:
        out = restore_classical(x_c, name, 0.3 if name != "blur" else 1.0, mask, method)
        _valid(out, clean)
        if mask is not None:
            known = mask.expand_as(clean) < 0.5
            assert torch.equal(out[known], x_c[known])


def test_classical_denoisers_improve_on_noise(clean):
    x_c, _ = corrupt(clean, "gaussian", 0.3, generator=torch.Generator().manual_seed(0))
    before = ssim_psnr_per_image(clean, x_c)[1].mean()
    for method in CLASSICAL["gaussian"]:
        after = ssim_psnr_per_image(clean, restore_classical(x_c, "gaussian", 0.3, None, method))[1].mean()
        assert after > before + 1.0, method


@pytest.mark.parametrize("sigma", [1.5, 5.0])
def test_classical_deblurring_improves_on_the_blurred_image(clean, sigma):
    """Richardson-Lucy on a reflect-padded image (zero padding flooded the 16 px digits with edge ringing: 15.0 dB,
    worse than the blurred input's 18.6) and unsharp masking both sharpen."""
    x_c, _ = corrupt(clean, "blur", sigma)
    before = ssim_psnr_per_image(clean, x_c)[1].mean()
    for method in CLASSICAL["blur"]:
        after = ssim_psnr_per_image(clean, restore_classical(x_c, "blur", sigma, None, method))[1].mean()
        assert after > before + 0.5, (method, before, after)


@pytest.mark.parametrize("name", ["gaussian", "mask-box", "downsample-x4", "blur"])
def test_learned_restorers_return_valid_images_and_keep_known_pixels(clean, tiny_vae, tiny_diffusion, name):
    x_c, mask = corrupt(clean, name, 0.3, generator=torch.Generator().manual_seed(0))
    outs = [restore_vae(tiny_vae, x_c, mask),
            restore_vae_refined(tiny_vae, x_c, name, 0.3, mask, steps=3),
            restore_diffusion(tiny_diffusion, x_c, name, 0.3, mask, steps=10,
                              generator=torch.Generator().manual_seed(0))]
    for out in outs:
        _valid(out, clean)
        if mask is not None:
            known = mask.expand_as(clean) < 0.5
            assert torch.equal(out[known], x_c[known])   # exactly the known pixels


@pytest.mark.parametrize(("name", "strength"), [("downsample-x4", 0.0), ("blur", 1.5), ("low-light", 0.6)])
def test_vae_refinement_explains_observed_pixels_better_than_encoding(digits_dataset, clean, name, strength):
    """With the forward operator, refinement lowers the error |A(restored) - observation| that the plain
    encode-decode leaves (on a VAE trained for a few seconds)."""
    torch.manual_seed(1)
    vae = build_model(VAEConfig(latent_dim=8, width=8, stages=2), digits_dataset.meta)
    opt = torch.optim.Adam(vae.parameters(), lr=3e-3)
    x_train, y_train = as_float(digits_dataset.train.images[:512]), digits_dataset.train.labels[:512]
    for i in range(30):
        sl = slice(64 * (i % 8), 64 * (i % 8 + 1))
        loss = vae.loss(x_train[sl], y_train[sl])["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    vae.eval()
    x_c, _ = corrupt(clean, name, strength, generator=None)
    y = torch.zeros(len(clean), dtype=torch.long)
    plain = restore_vae(vae, x_c, labels=y)
    refined = restore_vae_refined(vae, x_c, name, strength, labels=y, steps=30, lr=0.1)
    op, target = forward_operator(name, strength), observation(name, x_c)

    def err(out):
        return float((op(out) - target).pow(2).mean())

    assert err(refined) < 0.9 * err(plain)


@pytest.mark.parametrize(("name", "strength"), [("blur", 1.5), ("low-light", 0.6)])
def test_bundled_vae_refinement_undoes_blur_and_darkening(bundled_vae, digits_dataset, clean, name, strength):
    """The trained VAE: refinement through the operator restores (bench, 40 images: blur 20.5 -> 25.5 dB, low light
    15.2 -> 25.4 dB). With A(decoded) compared to A(corrupted), it made them worse than the plain VAE."""
    x_c, _ = corrupt(clean, name, strength)
    y = digits_dataset.test.labels[:len(clean)]
    plain = float(ssim_psnr_per_image(clean, restore_vae(bundled_vae.model, x_c, labels=y))[1].mean())
    refined = restore_vae_refined(bundled_vae.model, x_c, name, strength, labels=y, steps=100)
    assert float(ssim_psnr_per_image(clean, refined)[1].mean()) > plain + 2.0


def test_observation_is_what_the_operator_makes_of_the_clean_image(clean):
    for name, strength in (("blur", 1.5), ("low-light", 0.6), ("downsample-x2", 0.0), ("downsample-x4", 0.0)):
        x_c, _ = corrupt(clean, name, strength)
        torch.testing.assert_close(forward_operator(name, strength)(clean), observation(name, x_c))


def test_data_consistency_moves_estimates_towards_the_observation(clean):
    assert data_consistency("gaussian", 0.3, clean) is None and data_consistency("mask-box", 0.3, clean) is None
    guess = torch.full_like(clean, 0.0)            # a grey estimate, in [-1, 1] units
    x_c, _ = corrupt(clean, "downsample-x2", 0.0)
    fixed = (data_consistency("downsample-x2", 0.0, x_c, iters=1)(guess) + 1) / 2
    # one step of size f^2 is the projection onto {x : mean over each f x f block = the observed pixel}
    torch.testing.assert_close(F.avg_pool2d(fixed, 2), observation("downsample-x2", x_c), atol=1e-5, rtol=0)
    for name, strength in (("blur", 1.5), ("low-light", 0.6)):
        x_c, _ = corrupt(clean, name, strength)
        op = forward_operator(name, strength)
        before = float((op((guess + 1) / 2) - x_c).pow(2).mean())
        after = float((op((data_consistency(name, strength, x_c)(guess) + 1) / 2) - x_c).pow(2).mean())
        assert after < 0.5 * before, name


@pytest.mark.parametrize(("name", "strength"), [("blur", 1.5), ("low-light", 0.6), ("downsample-x2", 0.0)])
def test_bundled_diffusion_restores_better_with_data_consistency(clean, name, strength):
    """The trained diffusion model (resources/): the data step turns SDEdit, which only re-imagines the corrupted
    image, into a restorer that explains it (bench_restore.py --all measures the full table)."""
    from core.paths import bundled_model
    from core.training.checkpoint import load_model

    path = bundled_model("diffusion")
    assert path is not None, "resources/digits-diffusion.safetensors is missing; run `make default-model`"
    model = load_model(path).model
    x_c, _ = corrupt(clean, name, strength)
    psnr = {}
    for on in (False, True):
        out = restore_diffusion(model, x_c, name, strength, steps=40, generator=torch.Generator().manual_seed(0),
                                consistency=on)
        psnr[on] = float(ssim_psnr_per_image(clean, out)[1].mean())
    assert psnr[True] > psnr[False] + 3.0, psnr


def test_diffusion_restore_strength_zero_is_identity_and_stop_returns_none(clean, tiny_diffusion):
    x_c, _ = corrupt(clean, "gaussian", 0.2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(tiny_diffusion.restore(x_c, strength=0.0), x_c)
    calls = []
    out = tiny_diffusion.restore(x_c, strength=0.8, steps=10, should_stop=lambda: calls.append(1) or len(calls) > 2)
    assert out is None and len(calls) == 3


def test_restore_row_yields_corrupted_then_each_restorer(clean, tiny_vae, tiny_diffusion):
    items = list(restore_row(clean[:1], "gaussian", 0.3, vae=tiny_vae, diffusion=tiny_diffusion, refine_steps=2))
    assert [i["restorer"] for i in items] == ["corrupted", "vae", "vae-refined", "diffusion", "classical:tv"]
    for item in items:
        assert item["images"].shape == (1, 1, 16, 16) and item["psnr"].shape == (1,) and item["seconds"] >= 0


def test_batch_evaluate_rows_and_files(digits_dataset, tiny_vae, tmp_path):
    done = []
    rows = batch_evaluate(tiny_vae, None, digits_dataset, corruptions=["gaussian", "mask-box"], strengths=[0.2],
                          n_images=4, seed=0, refine_steps=2, progress=lambda d, t: done.append((d, t)))
    restorers = {(r["corruption"], r["restorer"]) for r in rows}
    assert ("gaussian", "classical:wavelet") in restorers and ("mask-box", "vae-refined") in restorers
    assert ("gaussian", "corrupted") in restorers
    assert done[-1][0] == done[-1][1] == len(rows) - 2
    for r in rows:
        assert r["n"] == 4 and r["psnr_std"] >= 0 and 0 < r["ssim_mean"] <= 1 and r["seconds_per_image"] >= 0
    csv_text = write_csv(rows, tmp_path / "t.csv").read_text().splitlines()
    assert csv_text[0].startswith("corruption,strength,restorer") and len(csv_text) == len(rows) + 1
    assert json.loads(write_json(rows, tmp_path / "t.json").read_text()) == rows


def test_batch_evaluate_stops_early(digits_dataset, tiny_vae):
    rows = batch_evaluate(tiny_vae, None, digits_dataset, corruptions=["gaussian"], strengths=[0.2], n_images=2,
                          seed=0, refine_steps=2, should_stop=lambda: True)
    assert [r["restorer"] for r in rows] == ["corrupted"]
