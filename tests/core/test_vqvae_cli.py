"""The VQ-VAE through the headless CLI on the digits: train (first stage), train --prior-of (second stage), sample
and eval end to end in seconds; every bad input is one line and exit 2."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from core import cli

# A VQ-VAE that trains in a couple of seconds on the CPU (the digits-vq preset, made smaller).
TINY = ["--preset", "digits-vq", "--epochs", "2", "--threads", "1", "--set", "model.width=8",
        "--set", "model.codebook_size=32", "--set", "model.code_dim=8", "--set", "model.prior_width=32",
        "--set", "model.prior_layers=1", "--set", "model.prior_epochs=3", "--set", "train.preview_every=0"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(code: int, err: str) -> str:
    assert code == 2 and err.count("\n") == 1 and err.startswith("vae-explorer: error: "), err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(first-stage checkpoint, prior checkpoint), both trained through the CLI."""
    root = tmp_path_factory.mktemp("vqcli")
    assert cli.main(["train", *TINY, "--out", str(root / "vq"), "--quiet"]) == 0
    first = root / "vq" / "checkpoints" / "best.safetensors"
    assert cli.main(["train", "--prior-of", str(first), "--threads", "1", "--out", str(root / "prior"),
                     "--quiet"]) == 0
    return first, root / "prior" / "checkpoints" / "best.safetensors"


def test_the_prior_run_takes_its_settings_from_the_first_stage(runs):
    config = json.loads((runs[1].parent.parent / "config.json").read_text())
    assert config["model"]["stage"] == "prior" and config["model"]["first_stage"] == str(runs[0].resolve())
    assert config["model"]["codebook_size"] == 32 and config["train"]["epochs"] == 3   # model.prior_epochs


def test_sample_draws_codes_from_the_prior(runs, capsys, tmp_path):
    code, out, _ = run(capsys, "sample", runs[1], "--n", "4", "--classes", "3,7", "--out", tmp_path / "s.png",
                       "--device", "cpu", "--temperature", "0.8")
    assert code == 0 and "4x4 code grids drawn from the code prior" in out
    assert Image.open(tmp_path / "s.png").size[1] >= 2 * 16


def test_eval_reports_reconstruction_codebook_and_prior(runs, capsys):
    code, out, _ = run(capsys, "eval", runs[1], "--json", "--quiet", "--device", "cpu", "--samples-per-class", "10",
                       "--fid", "judge")
    assert code == 0
    result = json.loads(out)
    assert result["model_kind"] == "vqvae" and 0.5 < result["ssim"] <= 1 and result["psnr"] > 10
    assert 1 <= result["codebook_perplexity"] <= 32 and 0 < result["codebook_usage"] <= 1
    assert result["prior_bits_per_code"] < result["uniform_bits_per_code"] == 5.0
    assert result["elbo"] == pytest.approx(-(result["recon"] + result["prior_nll"]))
    assert 0 <= result["conditional_accuracy"] <= 1 and result["fid_like"] > 0
    # a first stage: reconstruction and codebook numbers, no prior numbers, and a note that says why
    code, out, _ = run(capsys, "eval", runs[0], "--quiet", "--device", "cpu", "--fid", "judge")
    assert code == 0 and "codebook perplexity" in out and "code prior" in out and "--prior-of" in out
    assert "conditional accuracy" not in out


def test_bad_inputs_are_one_line(runs, capsys, tmp_path):
    from core.paths import bundled_model

    first, prior = runs
    vae = bundled_model("vae")
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(prior.read_bytes()[:-500])
    cases = [
        (("sample", first, "--out", tmp_path / "a.png"), "without a code prior"),
        (("sample", prior, "--from", "density", "--out", tmp_path / "a.png"), "code prior (--from prior)"),
        (("sample", prior, "--steps", "5", "--out", tmp_path / "a.png"), "--temperature"),
        (("train", "--prior-of", vae, "--out", tmp_path / "r1"), "holds a vae model"),
        (("train", "--prior-of", prior, "--out", tmp_path / "r2"), "already holds a code prior"),
        (("train", "--prior-of", first, "--preset", "digits", "--out", tmp_path / "r3"), "leave out --preset"),
        (("train", "--prior-of", truncated, "--out", tmp_path / "r4"), "truncated"),
        (("sample", truncated, "--out", tmp_path / "a.png"), "truncated"),
        (("eval", truncated), "truncated"),
        (("eval", prior, "--from", "density"), "vqvae model"),
        (("restore-eval", "--vae", prior, "--n", "2"), "not a VAE"),
        (("train", *TINY, "--set", "model.prior_heads=3", "--out", tmp_path / "r5"), "multiple of prior_heads"),
        (("train", *TINY, "--set", "model.stage=prior", "--out", tmp_path / "r6"), "needs first_stage"),
    ]
    for argv, words in cases:
        code, _, err = run(capsys, *argv)
        assert words in one_line_error(code, err), (argv, err)
    assert not any((tmp_path / f"r{i}").exists() for i in range(1, 7))

