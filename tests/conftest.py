"""Shared test set-up: a private user home for the whole session (no real caches touched), offscreen Qt."""

import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Tiny test models run fastest on one thread, and the GUI tests train on a worker beside the GUI thread.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One isolated home per test session: caches (datasets, classifier, numba, projections) are shared by the tests of a
# run but never by the user's real application.
os.environ["VAE_EXPLORER_HOME"] = _HOME = tempfile.mkdtemp(prefix="vae-explorer-test-home-")
# Removed when the session ends (each session's home holds ~90 MB of runs and caches; left behind they fill the disk).
atexit.register(shutil.rmtree, _HOME, ignore_errors=True)
# The tests' subprocesses (torchrun's torchelastic_* folders, training runs) keep their temporary files there too.
os.makedirs(os.path.join(_HOME, "tmp"), exist_ok=True)
os.environ["TMPDIR"] = os.path.join(_HOME, "tmp")
# Screenshots the GUI tests save to be looked at: under that home (gone with it) unless a folder is named to keep them.
os.environ.setdefault("VAE_EXPLORER_TEST_SHOTS", str(Path(_HOME) / "test-output"))
# ... except numba's compiled code, which no test result depends on: kept between runs in the checkout (ignored by
# git; `make clean` removes it), so the UMAP tests compile umap's kernels once (~30 s) instead of every run.
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "numba"))


@pytest.fixture(scope="session")
def bundled_vae():
    """The VAE shipped in resources/ (a real trained model on real digits), loaded once per test session."""
    from core.paths import bundled_model
    from core.training.checkpoint import load_model

    path = bundled_model("vae")
    if path is None:
        pytest.fail("resources/digits-vae.safetensors is missing: rebuild it with `make default-model`")
    return load_model(path)


@pytest.fixture(scope="session")
def tiny_beta_sweep(tmp_path_factory):
    """(spec, folder) of a tiny real beta sweep on the digits (β 0.5 and 2, one epoch of a 4-wide VAE), run and
    evaluated once per session: the reports' and the Runs panel's evaluation tests read its eval.json files."""
    import dataclasses

    from core.experiments.runner import run_experiment
    from core.experiments.spec import RunSpec, beta_sweep

    tiny = {"train.epochs": 1, "model.width": 4, "model.latent_dim": 4, "model.stages": 1, "train.batch_size": 128,
            "train.log_every": 2, "train.threads": 1}
    spec = beta_sweep("digits", "quick", betas=(0.5, 2.0))
    spec = dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, **tiny}) for r in spec.runs))
    out = tmp_path_factory.mktemp("sweep")
    assert list(run_experiment(spec, out))[-1].status == "completed"
    return spec, out


@pytest.fixture
def finished_run():
    """A factory: make(folder, eval_text=None) writes a finished run folder as the Trainer leaves it (config.json and
    metrics.jsonl: start, one epoch, end; no training) and, given `eval_text`, that text as its eval.json."""
    import json
    import time

    from core.config import Config
    from core.training.events import EpochSummary, RunEnded, RunStarted, to_record

    def make(folder: Path, eval_text: str | None = None) -> Path:
        folder.mkdir(parents=True)
        config = Config()
        (folder / "config.json").write_text(config.to_json())
        now = time.time()
        events = [RunStarted(str(folder), config.to_dict(), {}, "cpu", 4, 4, time=now - 10),
                  EpochSummary(1, 4, {"loss": 60.0}, {"loss": 61.0, "elbo": -61.0}, True, 1.0, time=now - 5),
                  RunEnded("completed", "done", 4, 1, 61.0, time=now - 4)]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(to_record(ev)) + "\n" for ev in events))
        if eval_text is not None:
            (folder / "eval.json").write_text(eval_text)
        return folder

    return make
