"""Temporary checkpoint files left by a save killed mid-write (kill -9) are removed when a run resumes or a run folder
is followed; a file whose writer still runs is never touched."""

import os
import subprocess
import sys
import time

import pytest

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.training.run_folder import FOLLOW_LEFTOVER_MIN_AGE_S, follow_run, remove_leftovers
from core.training.trainer import Trainer

pytestmark = pytest.mark.skipif(os.name == "nt", reason="Windows: leftovers are kept (no safe liveness check)")


@pytest.fixture(scope="module")
def dead_pid() -> int:
    """The id of a process that has exited (and been reaped), as a writer killed by kill -9 leaves it."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant(run_dir, dead_pid, *, age_s: float = 0.0) -> dict:
    """Temporary files as core.files.atomic_write names them: one of a dead writer, one of this (live) process, and
    files that only look similar."""
    folder = run_dir / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "dead": folder / f".last.safetensors.tmp-{dead_pid}",
        "live": folder / f".elsewhere.safetensors.tmp-{os.getpid()}",   # a name the trainer's own saves do not use
        "not_hidden": folder / f"notes.tmp-{dead_pid}",
        "no_pid": folder / ".last.safetensors.tmp-abc",
    }
    past = time.time() - age_s
    for path in files.values():
        path.write_bytes(b"partial checkpoint")
        os.utime(path, (past, past))
    return files


def test_remove_leftovers_keeps_a_live_writers_file(tmp_path, dead_pid):
    files = plant(tmp_path, dead_pid)
    assert remove_leftovers(tmp_path) == [files["dead"]]
    assert not files["dead"].exists()
    assert files["live"].exists() and files["not_hidden"].exists() and files["no_pid"].exists()
    assert remove_leftovers(tmp_path) == []
    assert remove_leftovers(tmp_path / "missing") == []   # no run folder (yet): nothing to do, no error


def test_remove_leftovers_waits_for_files_written_recently(tmp_path, dead_pid):
    files = plant(tmp_path, dead_pid)
    assert remove_leftovers(tmp_path, min_age_s=60) == []
    assert files["dead"].exists()


def test_a_resumed_run_removes_leftovers(tmp_path, dead_pid, digits_dataset):
    cfg = Config(DataConfig("digits", image_size=16), VAEConfig(latent_dim=4, width=8),
                 TrainConfig(epochs=2, batch_size=128, log_every=5, preview_every=0, device="cpu"))
    trainer = Trainer(cfg, run_dir=tmp_path, dataset=digits_dataset)
    for _ in trainer.run():
        trainer.stop()   # stops at the first step, with an interrupt checkpoint to resume from
    files = plant(tmp_path, dead_pid)
    resumed = Trainer(cfg, resume=tmp_path / "checkpoints" / "last.safetensors", dataset=digits_dataset)
    events = list(resumed.run())
    assert events[-1].status == "completed"
    assert not files["dead"].exists()
    assert files["live"].exists() and files["not_hidden"].exists() and files["no_pid"].exists()


def test_following_a_run_folder_removes_old_leftovers(tmp_path, dead_pid):
    files = plant(tmp_path, dead_pid, age_s=FOLLOW_LEFTOVER_MIN_AGE_S + 60)
    assert list(follow_run(tmp_path, poll_s=0.01, should_stop=lambda: True)) == []
    assert not files["dead"].exists()
    assert files["live"].exists() and files["not_hidden"].exists() and files["no_pid"].exists()


def test_following_keeps_a_recent_leftover_whose_writer_may_be_on_another_machine(tmp_path, dead_pid):
    files = plant(tmp_path, dead_pid)
    list(follow_run(tmp_path, poll_s=0.01, should_stop=lambda: True))
    assert files["dead"].exists()
