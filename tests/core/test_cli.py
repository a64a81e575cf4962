"""The headless CLI, called in-process: `core.cli.main([...])` with captured output and exit status."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from PIL import Image

import core
from core import cli

# A model that trains in a couple of seconds on the CPU.
TINY = ["--epochs", "1", "--per-class", "20", "--batch-size", "32", "--set", "model.width=8",
        "--set", "model.latent_dim=4", "--set", "model.stages=2", "--set", "train.log_every=2"]


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny run folder trained through the CLI (shared by the tests that need a checkpoint)."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    assert cli.main(["train", *TINY, "--out", str(run_dir), "--quiet"]) == 0
    return run_dir


def test_help_lists_the_commands_and_mentions_the_gui(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in cli.COMMANDS:
        assert command in out
    assert "GUI" in out


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"vae-explorer {core.__version__}"


def test_train_help_lists_settings_from_the_config_metadata(capsys):
    code, out, _ = run(capsys, "train", "--help")
    assert code == 0
    assert "model.latent_dim" in out and "size of the latent code z" in out and "train.ema_decay" in out


@pytest.mark.parametrize("argv", [
    [],
    ["bogus"],
    ["train", "--preset", "nope"],
    ["train", "--epochs", "zero"],
    ["train", "--epochs", "0"],
    ["train", "--set", "model.nope=1"],
    ["train", "--set", "latent_dim=4"],
    ["train", "--dataset", "nope"],
    ["train", "--resume", "no/such/file.safetensors"],
    ["sample", "no/such/file.safetensors"],
    ["eval", "no/such/file.safetensors"],
    ["sample", "{ckpt}", "--n", "-3"],
    ["sample", "{ckpt}", "--n", "many"],
    ["sample", "{ckpt}", "--temperature", "nan"],
    ["sample", "{ckpt}", "--temperature", "-1"],
    ["sample", "{ckpt}", "--classes", "eleven"],
    ["sample", "{ckpt}", "--classes", "10"],
    ["sample", "{ckpt}", "--steps", "5"],
    ["sample", "{ckpt}", "--out", "grid.jpg"],
    ["sample", "{run}"],
    ["eval", "{run}"],
    ["eval", "{ckpt}", "--split", "nope"],
    ["restore-eval"],
    ["restore-eval", "--vae", "{ckpt}", "--corruptions", "fog"],
    ["restore-eval", "--diffusion", "{ckpt}"],
    # Requests too large to finish, and seeds past what torch takes: refused before any work.
    ["sample", "{ckpt}", "--n", "100000"],
    ["sample", "{ckpt}", "--scale", "100000"],
    ["sample", "{ckpt}", "--seed", "18446744073709551616"],
    ["eval", "{ckpt}", "--iwae-k", "1000000"],
    ["train", "--seed", "99999999999999999999"],
    ["train", "--set", "train.seed=4294967296"],
    ["restore-eval", "--vae", "{ckpt}", "--strengths", "1e9"],
    ["restore-eval", "--vae", "{ckpt}", "--corruptions", ","],
    # Output paths that cannot be written (here under a file): said before any work is done.
    ["sample", "{ckpt}", "--out", "{ckpt}/grid.png"],
    ["restore-eval", "--vae", "{ckpt}", "--out", "{ckpt}/rows.csv"],
    ["train", *TINY, "--out", "{ckpt}/run"],
])
def test_bad_arguments_give_one_line_and_exit_2(capsys, trained, argv):
    ckpt = trained / "checkpoints" / "last.safetensors"
    argv = [a.format(ckpt=ckpt, run=trained) for a in argv]
    code, out, err = run(capsys, *argv)
    assert code == 2, (argv, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("vae-explorer: error: ")
    assert "Traceback" not in err + out


def test_train_writes_a_run_folder(trained):
    assert (trained / "config.json").is_file()
    assert (trained / "checkpoints" / "last.safetensors").is_file()
    assert (trained / "checkpoints" / "best.safetensors").is_file()
    assert list((trained / "samples").glob("epoch-*.png"))
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "start" and records[-1]["type"] == "end"
    assert records[-1]["status"] == "completed"
    config = json.loads((trained / "config.json").read_text())
    assert config["model"]["latent_dim"] == 4 and config["data"]["per_class"] == 20


def test_train_reports_epochs_and_checkpoints(capsys, tmp_path):
    code, out, err = run(capsys, "train", *TINY, "--out", str(tmp_path / "r"))
    assert code == 0
    assert "epoch 1/1" in out and "best checkpoint" in out
    assert "training vae on digits" in err


def test_resume_continues_in_the_same_run_folder(capsys, trained, tmp_path):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    code, out, _ = run(capsys, "train", "--resume", str(run_dir / "checkpoints" / "last.safetensors"),
                       "--epochs", "2", "--quiet")
    assert code == 0, out
    ends = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert ends[-1]["type"] == "end" and ends[-1]["epoch"] == 2


def test_sample_writes_one_row_per_class(capsys, trained, tmp_path):
    out_png = tmp_path / "grid.png"
    code, out, _ = run(capsys, "sample", str(trained / "checkpoints" / "best.safetensors"), "--classes", "3,7,0",
                       "--n", "5", "--out", str(out_png), "--scale", "2")
    assert code == 0, out
    with Image.open(out_png) as im:
        assert im.format == "PNG"
        assert im.size == (5 * 16 * 2, 3 * 16 * 2)   # (width, height): n columns, one row per class


def test_sample_is_deterministic_by_seed(capsys, trained, tmp_path):
    ckpt = str(trained / "checkpoints" / "best.safetensors")
    paths = []
    for i, seed in enumerate(("1", "1", "2")):
        paths.append(tmp_path / f"s{i}.png")
        assert run(capsys, "sample", ckpt, "--n", "4", "--seed", seed, "--out", str(paths[-1]))[0] == 0
    a, b, c = (Image.open(p).tobytes() for p in paths)
    assert a == b and a != c


def test_eval_json_parses(capsys, trained):
    code, out, _ = run(capsys, "eval", str(trained / "checkpoints" / "best.safetensors"), "--json", "--quiet",
                       "--iwae-k", "4", "--samples-per-class", "5")
    assert code == 0
    result = json.loads(out)
    for key in ("elbo", "recon", "kl", "bits_per_dim", "iwae_nll", "ssim", "psnr", "active_units",
                "conditional_accuracy", "fid_like"):
        assert key in result
    assert result["elbo"] == pytest.approx(-(result["recon"] + result["kl"]), rel=1e-6)


def test_eval_table(capsys, trained):
    code, out, _ = run(capsys, "eval", str(trained / "checkpoints" / "best.safetensors"), "--quiet", "--iwae-k", "0",
                       "--samples-per-class", "3")
    assert code == 0
    assert "ELBO" in out and "conditional accuracy" in out and "IWAE" not in out


def test_restore_eval_writes_csv(capsys, trained, tmp_path):
    out_csv = tmp_path / "results.csv"
    code, out, err = run(capsys, "restore-eval", "--vae", str(trained / "checkpoints" / "best.safetensors"),
                         "--corruptions", "gaussian", "--strengths", "0.1", "--n", "4", "--out", str(out_csv),
                         "--quiet")
    assert code == 0, err
    assert "gaussian" in out
    header, *rows = out_csv.read_text().splitlines()
    assert "psnr_mean" in header and rows


def test_ctrl_c_saves_a_checkpoint_and_exits_130(capsys, tmp_path, monkeypatch):
    from core.training import trainer as train

    original = train.Trainer.run

    def run_and_interrupt(self):
        for ev in original(self):
            if type(ev).__name__ == "StepMetrics":
                os.kill(os.getpid(), signal.SIGINT)   # what Ctrl-C sends; the CLI's handler calls stop()
            yield ev

    monkeypatch.setattr(train.Trainer, "run", run_and_interrupt)
    run_dir = tmp_path / "r"
    code, out, err = run(capsys, "train", *TINY, "--epochs", "3", "--out", str(run_dir), "--quiet")
    assert code == 130
    assert "--resume" in err and "last.safetensors" in err
    assert (run_dir / "checkpoints" / "last.safetensors").is_file()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler   # the handler was put back


def test_out_of_memory_suggests_a_smaller_batch_and_keeps_the_checkpoint(capsys, tmp_path, monkeypatch):
    from core.models.vae import ConditionalVAE

    original = ConditionalVAE.loss
    calls = {"n": 0}

    def loss(self, *args, **kwargs):
        if self.training:
            calls["n"] += 1
            if calls["n"] > 7:   # the first epoch (7 steps) completes and is checkpointed
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ConditionalVAE, "loss", loss)
    run_dir = tmp_path / "r"
    code, _, err = run(capsys, "train", *TINY, "--epochs", "2", "--out", str(run_dir), "--quiet")
    assert code == 1
    assert "smaller batch" in err and "--batch-size 16" in err
    assert "last.safetensors" in err and (run_dir / "checkpoints" / "last.safetensors").is_file()
    assert "Traceback" not in err


def test_a_failed_run_exits_1_with_the_reason(capsys, tmp_path, monkeypatch):
    from core.models.vae import ConditionalVAE

    def loss(self, *args, **kwargs):
        raise RuntimeError("the model exploded")

    monkeypatch.setattr(ConditionalVAE, "loss", loss)
    code, _, err = run(capsys, "train", *TINY, "--out", str(tmp_path / "r"), "--quiet")
    assert code == 1
    assert "the model exploded" in err


def test_diffusion_train_and_sample_with_sampler_options(capsys, tmp_path):
    run_dir = tmp_path / "diff"
    code, _, err = run(capsys, "train", "--model", "diffusion", "--epochs", "1", "--per-class", "10", "--batch-size",
                       "32", "--set", "model.base_channels=8", "--set", "model.levels=1", "--set",
                       "model.timesteps=10", "--set", "model.sample_steps=2", "--out", str(run_dir), "--quiet")
    assert code == 0, err
    out_png = tmp_path / "d.png"
    code, _, err = run(capsys, "sample", str(run_dir / "checkpoints" / "last.safetensors"), "--classes", "1,2",
                       "--n", "3", "--steps", "2", "--guidance", "1.5", "--sampler", "ddim", "--out", str(out_png))
    assert code == 0, err
    with Image.open(out_png) as im:
        assert im.size == (3 * 16, 2 * 16)
    code, _, err = run(capsys, "sample", str(run_dir / "checkpoints" / "last.safetensors"), "--temperature", "0.5",
                       "--out", str(out_png))
    assert code == 2 and "temperature" in err


def test_the_bundled_default_model_loads_and_samples(capsys, tmp_path):
    from core.paths import bundled_model

    path = bundled_model("vae")
    assert path is not None, "resources/digits-vae.safetensors is missing: run `make default-model`"
    assert path.stat().st_size < 8_000_000   # "small, a few MB"
    out_png = tmp_path / "bundled.png"
    code, out, err = run(capsys, "sample", str(path), "--n", "2", "--out", str(out_png))
    assert code == 0, err
    with Image.open(out_png) as im:
        assert im.size == (2 * 16, 10 * 16)


def test_sample_matches_class_names_in_any_case_as_train_does(capsys, tmp_path, dataset_files):
    """`train --classes` and `sample --classes` match names the same way (core.data.datasets.match_class):
    `--classes Airplane` finds CIFAR-10's "airplane" in both."""
    dataset_files.write_cifar10(tmp_path / "data")
    run_dir = tmp_path / "r"
    code, _, err = run(capsys, "train", *TINY, "--dataset", "cifar10", "--data-root", str(tmp_path / "data"),
                       "--classes", "Airplane,CAT", "--per-class", "0", "--out", str(run_dir), "--quiet")
    assert code == 0, err
    ckpt = str(run_dir / "checkpoints" / "last.safetensors")
    grids = {}
    for spec in ("Cat,AIRPLANE", "1,0"):
        out_png = tmp_path / f"{spec}.png"
        code, out, err = run(capsys, "sample", ckpt, "--classes", spec, "--n", "2", "--out", str(out_png))
        assert code == 0, err
        assert "rows: cat, airplane" in out
        grids[spec] = Image.open(out_png).tobytes()
    assert grids["Cat,AIRPLANE"] == grids["1,0"]


def test_sigterm_saves_a_checkpoint_and_exits_143(tmp_path):
    """What `docker stop`, systemd and Slurm send: the run stops after the step, keeps its work and says how to
    resume, like Ctrl-C (only the exit status differs: 128 + 15)."""
    import subprocess
    import sys
    import time

    run_dir = tmp_path / "r"
    env = dict(os.environ, VAE_EXPLORER_HOME=str(tmp_path / "home"))
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "train", *TINY, "--epochs", "200", "--out",
                             str(run_dir), "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.is_file() and '"type": "step"' in metrics.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "SIGTERM" in err and "resume with" in err and "Traceback" not in err
    ckpt = run_dir / "checkpoints" / "last.safetensors"      # the interrupt checkpoint is the run's last one
    assert f"checkpoint saved to {ckpt}" in err
    from core.training.checkpoint import load_checkpoint

    assert load_checkpoint(ckpt).train_state["step"] > 0


def test_resume_from_a_checkpoint_whose_weights_do_not_fit_is_a_user_error(capsys, tmp_path):
    """An edited checkpoint (its config says latent 8, its weights are latent 4): exit 2 and one line, not a torch
    error with exit 1."""
    from core.config import preset, with_overrides
    from core.data.datasets import load_dataset
    from core.models import build_model
    from core.training.checkpoint import save_checkpoint

    cfg = preset("digits")
    small = cfg.replace(model=with_overrides(cfg.model, latent_dim=4, width=8, stages=2))
    big = cfg.replace(model=with_overrides(cfg.model, latent_dim=8, width=8, stages=2))
    meta = load_dataset(cfg.data).meta
    bad = save_checkpoint(tmp_path / "edited.safetensors", model=build_model(small.model, meta), config=big, meta=meta,
                          train_state={"step": 5, "epoch": 1})
    code, out, err = run(capsys, "train", "--resume", str(bad), "--out", str(tmp_path / "r"), "--quiet")
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "do not fit" in lines[0] and str(bad) in lines[0]
