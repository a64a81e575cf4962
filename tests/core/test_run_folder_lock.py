"""One writer per run folder: the lock file, stale locks, finished runs that are never overwritten, and the CLI's
train refusing a second writer (two real processes) or a re-run into a finished folder."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import cli
from core.errors import UserError
from core.training.run_folder import (
    LOCK_NAME,
    RunFolderBusy,
    RunFolderNotEmpty,
    acquire_run_folder,
)

TINY = ["--per-class", "20", "--batch-size", "32", "--set", "model.width=8", "--set", "model.latent_dim=4",
        "--set", "model.stages=2", "--set", "train.log_every=2", "--quiet"]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_NAME}


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, **fields) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time(), "command": "test"} | fields
    (folder / LOCK_NAME).write_text(json.dumps(info))
    return folder / LOCK_NAME


# ------------------------------------------------------------------------------------------------ the lock itself
def test_a_second_writer_is_refused_naming_the_holder_and_the_lock_goes_with_release(tmp_path):
    run = tmp_path / "run"
    with acquire_run_folder(run, command="first writer") as lock:
        info = json.loads((run / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and info["started"] > 0
        with pytest.raises(RunFolderBusy) as err:
            acquire_run_folder(run, resume=True)
        message = str(err.value)
        assert f"process {os.getpid()} on {socket.gethostname()} (first writer)" in message
        assert "\n" not in message
        assert lock.held
    assert not (run / LOCK_NAME).exists()
    acquire_run_folder(run).release()   # free again


def test_a_lock_left_by_a_dead_process_is_taken_over_with_a_note(tmp_path):
    run = tmp_path / "run"
    pid = dead_pid()
    write_lock(run, pid=pid, command="vae-explorer train")
    with acquire_run_folder(run) as lock:
        assert len(lock.notes) == 1
        assert f"process {pid}" in lock.notes[0] and "no longer runs" in lock.notes[0]
        assert json.loads((run / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_reused_process_id_does_not_keep_a_stale_lock(tmp_path):
    """The lock names a process id that now belongs to a process started after the lock was taken (our parent,
    started long after 1970): the writer is gone."""
    run = tmp_path / "run"
    if not Path(f"/proc/{os.getppid()}/stat").exists():
        pytest.skip("needs /proc to tell when a process started")
    write_lock(run, pid=os.getppid(), started=1.0)
    with acquire_run_folder(run) as lock:
        assert "no longer runs" in lock.notes[0]


def test_a_live_process_keeps_its_lock(tmp_path):
    run = tmp_path / "run"
    write_lock(run, pid=os.getppid())    # running, and started before the lock's time
    with pytest.raises(RunFolderBusy, match=f"process {os.getppid()}"):
        acquire_run_folder(run)
    assert (run / LOCK_NAME).exists()


def test_a_lock_held_by_another_process_is_respected_whatever_it_says(tmp_path):
    """Another process holds the lock file's flock (its own O_EXCL lock): refused even though the file names a dead
    process on another host."""
    run = tmp_path / "run"
    lock = write_lock(run, pid=dead_pid(), host="elsewhere")
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1]); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
                               str(lock)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusy, match="elsewhere"):
            acquire_run_folder(run)
    finally:
        holder.kill()
        holder.wait()
    with acquire_run_folder(run) as taken:   # nobody holds it now: the other host's lock is stale
        assert "holds it no more" in taken.notes[0]


def test_an_old_empty_lock_file_is_taken_over(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / LOCK_NAME).write_bytes(b"")
    old = time.time() - 60
    os.utime(run / LOCK_NAME, (old, old))
    with acquire_run_folder(run) as lock:
        assert "does not say who wrote it" in lock.notes[0]


def test_a_folder_with_files_is_refused_unless_resumed_or_overwritten(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text("{}")
    (run / "metrics.jsonl").write_text('{"type": "start"}\n')
    (run / "checkpoints" / "last.safetensors").write_bytes(b"weights")
    before = digests(run)
    with pytest.raises(RunFolderNotEmpty) as err:
        acquire_run_folder(run)
    assert "already holds a run" in str(err.value) and "--overwrite" in str(err.value)
    assert f"--resume {run / 'checkpoints' / 'last.safetensors'}" in str(err.value)
    assert digests(run) == before and not (run / LOCK_NAME).exists()
    acquire_run_folder(run, resume=True).release()
    with acquire_run_folder(run, overwrite=True) as lock:
        assert lock.moved_to is not None and lock.moved_to.parent == tmp_path
        assert lock.moved_to.name.startswith("run.replaced-")
        assert digests(lock.moved_to) == before            # every file kept, byte for byte
        assert sorted(os.listdir(run)) == [LOCK_NAME]      # a fresh folder, locked
        assert not (lock.moved_to / LOCK_NAME).exists()
        assert str(lock.moved_to) in lock.notes[-1]


def test_any_other_file_counts_and_a_file_is_not_a_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RunFolderNotEmpty, match="notes.txt"):
        acquire_run_folder(tmp_path)
    with pytest.raises(UserError, match="is a file"):
        acquire_run_folder(tmp_path / "notes.txt")
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_unwritable_place_is_one_user_error(tmp_path):
    with pytest.raises(UserError, match="cannot"):
        acquire_run_folder("/proc/vae-explorer/run")


# ------------------------------------------------------------------------------------------------ the train command
def test_rerunning_train_into_a_finished_run_keeps_it_byte_identical(capsys, tmp_path):
    run = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    before = digests(run)
    assert "checkpoints/last.safetensors" in before
    capsys.readouterr()
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "already holds a run" in err and "--overwrite" in err
    assert digests(run) == before and not (run / LOCK_NAME).exists()
    # --overwrite starts over and keeps the earlier run beside it, byte for byte
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run), "--overwrite"]) == 0
    err = capsys.readouterr().err
    (moved,) = [p for p in tmp_path.iterdir() if p.name.startswith("run.replaced-")]
    assert digests(moved) == before and str(moved) in err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("start") == 1
    # resuming from a checkpoint of the folder continues there
    last = run / "checkpoints" / "last.safetensors"
    assert cli.main(["train", "--resume", str(last), "--epochs", "2", "--quiet"]) == 0
    assert cli.main(["train", "--resume", str(last), "--overwrite", "--quiet"]) == 2
    assert "give one of them" in capsys.readouterr().err


def _train_process(run: Path, home: Path) -> subprocess.Popen:
    env = dict(os.environ, VAE_EXPLORER_HOME=str(home), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "core.cli", "train", *TINY, "--epochs", "200", "--out", str(run)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_concurrent_train_processes_one_is_refused_naming_the_other(tmp_path):
    run = tmp_path / "run"
    first, second = _train_process(run, tmp_path / "home"), _train_process(run, tmp_path / "home")
    try:
        # Whichever locked first trains; the other is refused in one line naming it, before touching anything.
        deadline = time.monotonic() + 120
        while first.poll() is None and second.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        refused, winner = (first, second) if first.poll() is not None else (second, first)
        _, err = refused.communicate(timeout=30)
        assert refused.returncode == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
        assert f"is being written by process {winner.pid} on {socket.gethostname()} (vae-explorer train" in err
        metrics = run / "metrics.jsonl"
        while time.monotonic() < deadline and not (metrics.is_file() and '"type": "step"' in metrics.read_text()):
            time.sleep(0.1)
    finally:
        for proc in (first, second):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
    _, err = winner.communicate(timeout=120)
    assert winner.returncode == 143, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records].count("start") == 1      # one run in the log, not two interleaved
    assert not (run / LOCK_NAME).exists()


def test_sighup_saves_a_checkpoint_like_sigterm(tmp_path):
    run = tmp_path / "run"
    proc = _train_process(run, tmp_path / "home")
    metrics = run / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (metrics.is_file() and '"type": "step"' in metrics.read_text()):
        time.sleep(0.1)
    proc.send_signal(signal.SIGHUP)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 129, err
    assert "SIGHUP" in err and "resume with" in err and "Traceback" not in err
    from core.training.checkpoint import load_checkpoint

    assert load_checkpoint(run / "checkpoints" / "last.safetensors").train_state["step"] > 0
    assert not (run / LOCK_NAME).exists()


def test_a_killed_writers_lock_does_not_block_the_next_run(capsys, tmp_path):
    run = tmp_path / "run"
    write_lock(run, pid=dead_pid(), command="vae-explorer train")
    assert cli.main(["train", *TINY, "--epochs", "1", "--out", str(run)]) == 0
    assert "took over the run folder" in capsys.readouterr().err
