"""Experiments beyond one process: N local processes at once, Ray tasks, submitit jobs; results identical to the serial
runs with the same seeds; a driver killed with kill -9 loses nothing and retrains nothing when run again."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
import torch
from test_experiments import tiny_sweep  # the tiny sweep the session fixture trains one run after another

from core.experiments.launchers.local import LocalLauncher
from core.experiments.runner import ExperimentEnded, ExperimentProgress, run_experiment, run_status
from core.experiments.spec import RunSpec
from core.training.checkpoint import load_checkpoint
from core.training.run_folder import acquire_run_folder

ROOT = Path(__file__).resolve().parents[2]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_checkpoint(a).model_state, load_checkpoint(b).model_state
    assert wa.keys() == wb.keys()
    different = [k for k in wa if not torch.equal(wa[k], wb[k])]
    assert not different, f"{a} and {b} differ in {different[:3]}"


def without_paths(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "checkpoint"}


def test_parallel_runs_are_the_serial_runs_at_once(tmp_path, tiny_beta_sweep):
    spec, serial = tiny_beta_sweep          # the same two runs, trained and evaluated one after another
    seen: list[ExperimentProgress] = []
    events = list(run_experiment(spec, tmp_path, progress=seen.append, launcher=LocalLauncher(2)))
    assert isinstance(events[-1], ExperimentEnded) and events[-1].status == "completed", events[-1]
    assert seen[-1].fraction == pytest.approx(1.0)
    assert sum("on 1 CPU thread" in e.message for e in seen) == 2        # an equal share of this test's 2 threads
    for run in spec.runs:
        here, there = tmp_path / run.name, serial / run.name
        assert run_status(here) == "completed"
        assert_same_weights(here / "checkpoints" / "best.safetensors", there / "checkpoints" / "best.safetensors")
        assert without_paths(json.loads((here / "eval.json").read_text())) == \
            without_paths(json.loads((there / "eval.json").read_text()))
        # The launch's own files stay beside the run folders: each holds what a serial run's holds.
        assert (tmp_path / ".launch" / f"{run.name}.json").is_file()
        assert sorted(p.name for p in here.iterdir()) == sorted(p.name for p in there.iterdir())
    # At once, as the launcher saw it: each run was handed to its slot (its job file written) before the other's
    # outcome came back (file times, one clock). Run one after the other, the second job file is written only after
    # the first outcome was read. The runs' own records are not the proof: a slot still importing torch on a busy
    # machine can record its start after the other run's end, though both processes held their runs at once.
    from core.experiments.launchers.job import launch_files, outcome_file

    (a_in, a_out), (b_in, b_out) = [(job.stat().st_mtime_ns, outcome_file(job).stat().st_mtime_ns)
                                    for job in (launch_files(tmp_path, r.name)[0] for r in spec.runs)]
    assert a_in < b_out and b_in < a_out, (a_in, a_out, b_in, b_out)
    steps = [e for e in seen if type(e.train_event).__name__ == "StepMetrics"]
    assert {e.run for e in steps} == {r.name for r in spec.runs}, "progress follows each run's metrics.jsonl"

    again = list(run_experiment(spec, tmp_path, launcher=LocalLauncher(2)))
    assert again[-1].status == "completed"
    assert {e.stage for e in again if isinstance(e, ExperimentProgress)} == {"skipped", "done"}


_DRIVER = """
import dataclasses, sys
sys.path.insert(0, {tests!r})
from test_experiments import tiny_sweep
from core.experiments.spec import RunSpec
from core.experiments.launchers.local import LocalLauncher
from core.experiments.runner import run_experiment
spec = dataclasses.replace(tiny_sweep((1.0, 3.0)), evaluate=False)
runs = tuple(RunSpec(r.name, {{**r.delta, "train.epochs": {epochs}}}) for r in spec.runs)
spec = dataclasses.replace(spec, runs=runs)
for ev in run_experiment(spec, {out!r}, launcher=LocalLauncher(2)):
    print(ev, flush=True)
"""


def test_driver_killed_then_run_again_loses_nothing_and_retrains_nothing(tmp_path):
    epochs = 12
    out = tmp_path / "exp"
    code = _DRIVER.format(tests=str(Path(__file__).parent), epochs=epochs, out=str(out))
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    names = ("beta-1", "beta-3")
    deadline = time.monotonic() + 120
    try:
        while not all((out / n / "metrics.jsonl").is_file() and any(r["type"] == "step" for r in records(out / n))
                      for n in names):
            assert driver.poll() is None and time.monotonic() < deadline, "the runs never started"
            time.sleep(0.1)
    finally:
        driver.send_signal(signal.SIGKILL)     # no handler, no cleanup: the driver is gone
        driver.wait()
    # Its workers notice, stop after their step and save a checkpoint: each run folder ends with an "end" record.
    while not all(any(r["type"] == "end" for r in records(out / n)) for n in names):
        assert time.monotonic() < deadline, "the orphaned workers never stopped"
        time.sleep(0.1)
    before = {n: (out / n / "metrics.jsonl").read_bytes() for n in names}
    stopped = [n for n in names if run_status(out / n) == "stopped"]
    assert stopped, "the kill came after both runs had finished; nothing was interrupted"

    spec = dataclasses.replace(tiny_sweep((1.0, 3.0)), evaluate=False)
    spec = dataclasses.replace(spec, runs=tuple(RunSpec(r.name, {**r.delta, "train.epochs": epochs})
                                                for r in spec.runs))
    seen: list[ExperimentProgress] = []
    events = list(run_experiment(spec, out, progress=seen.append, launcher=LocalLauncher(2)))
    assert events[-1].status == "completed", events[-1]
    stages = {(e.run, e.stage) for e in seen if e.train_event is None}
    for n in names:
        log = (out / n / "metrics.jsonl").read_bytes()
        assert log.startswith(before[n]), "nothing of the first launch's record is lost"
        recs = records(out / n)
        steps = [r["step"] for r in recs if r["type"] == "step"]
        assert steps == sorted(set(steps)), f"{n}: a step was trained twice"
        ends = [r["status"] for r in recs if r["type"] == "end"]
        assert ends == (["stopped", "completed"] if n in stopped else ["completed"])
        assert (n, "resuming" if n in stopped else "skipped") in stages

    # The interrupted and resumed runs end with the weights of uninterrupted ones.
    serial = tmp_path / "serial"
    assert list(run_experiment(spec, serial))[-1].status == "completed"
    for n in names:
        assert_same_weights(out / n / "checkpoints" / "last.safetensors", serial / n / "checkpoints" /
                            "last.safetensors")


def test_a_run_another_process_writes_is_waited_for_never_trained_twice(tmp_path):
    spec = dataclasses.replace(tiny_sweep((1.0, 3.0)), evaluate=False)
    held = acquire_run_folder(tmp_path / "beta-1", command="another experiment")
    try:
        # One after another in this process: the held run is refused in one line naming its writer.
        events = list(run_experiment(spec, tmp_path))
        assert events[-1].status == "failed" and events[-1].failed == ("beta-1",)
        refused = [e.message for e in events if isinstance(e, ExperimentProgress) and e.stage == "failed"]
        assert len(refused) == 1 and "another experiment" in refused[0] and "\n" not in refused[0]
        assert run_status(tmp_path / "beta-3") == "completed"
        assert not (tmp_path / "beta-1" / "metrics.jsonl").exists()

        # Launched: the held run is followed until its writer lets go, then trained (once).
        seen: list[ExperimentProgress] = []
        result: list = []
        thread = threading.Thread(target=lambda: result.extend(
            run_experiment(spec, tmp_path, progress=seen.append, launcher=LocalLauncher(2))))
        thread.start()
        deadline = time.monotonic() + 60
        while not any("waiting for it" in e.message for e in list(seen)):
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.05)
        time.sleep(1.0)
        assert not (tmp_path / "beta-1" / "metrics.jsonl").exists(), "started while another process held it"
    finally:
        held.release()
    thread.join(120)
    assert result[-1].status == "completed", result[-1]
    assert run_status(tmp_path / "beta-1") == "completed"
    assert [r["status"] for r in records(tmp_path / "beta-1") if r["type"] == "end"] == ["completed"]


@pytest.mark.parametrize(("flags", "expected"), [
    (["--address", "localhost:6379"], "--address is a setting of --launcher ray"),
    (["--parallel", "2", "--partition", "gpu"], "--partition is a setting of --launcher slurm, not of --launcher "
                                                 "local"),
    (["--launcher", "slurm", "--time", "ten minutes"], "--time: 'ten minutes' is not a duration"),
    (["--parallel", "2", "--torchrun", "2"], "cannot be combined"),
    (["--launcher", "ray"], "--launcher ray needs Ray, which is not installed; install it with: pip install "
                            "'vae-explorer[ray]'"),
    (["--launcher", "slurm"], "--launcher slurm needs submitit, which is not installed; install it with: pip "
                              "install 'vae-explorer[slurm]'"),
    (["--parallel", "0"], "must be at least 1"),
    (["--slurm-array"], "--slurm-array is a setting of --launcher slurm"),
    (["--launcher", "slurm", "--slurm-array-parallelism", "2"], "--slurm-array-parallelism is a setting of "
                                                                 "--slurm-array"),
    (["--launcher", "slurm", "--slurm-array", "--parallel", "2"], "limit the runs at once with "
                                                                   "--slurm-array-parallelism N, not --parallel"),
    (["--launcher", "slurm", "--slurm-array", "--slurm-array-parallelism", "0"], "must be at least 1"),
    (["--launcher", "slurm", "--slurm-array", "--slurm-array-parallelism", "4"], "--launcher slurm needs submitit, "
                                                                                 "which is not installed"),
])
def test_cli_launch_flags_refused_in_one_line(tmp_path, capsys, monkeypatch, flags, expected):
    from core.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)          # neither engine installed: import fails
    monkeypatch.setitem(sys.modules, "submitit", None)
    out = tmp_path / "x"
    assert main(["experiment", "beta-sweep", "--out", str(out), *flags]) == 2
    err = capsys.readouterr().err
    assert expected in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_cli_parallel_experiment_stopped_then_continued(tmp_path, capsys, monkeypatch):
    """`experiment --parallel 2` through the CLI: SIGTERM stops both runs with their checkpoints (exit 143, the
    command to continue printed with its flags); the same command finishes them."""
    import core.experiments.spec as spec_module
    from core.cli.main import main

    tiny = dataclasses.replace(tiny_sweep((1.0, 3.0)), evaluate=False)
    tiny = dataclasses.replace(tiny, runs=tuple(RunSpec(r.name, {**r.delta, "train.epochs": 30}) for r in tiny.runs))
    monkeypatch.setitem(spec_module.EXPERIMENTS, "beta-sweep", lambda dataset, scale: tiny)
    out = tmp_path / "exp"

    def stop_when_both_train() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            logs = [out / n / "metrics.jsonl" for n in ("beta-1", "beta-3")]
            if all(p.is_file() and '"type": "step"' in p.read_text() for p in logs):
                os.kill(os.getpid(), signal.SIGTERM)
                return
            time.sleep(0.05)

    threading.Thread(target=stop_when_both_train, daemon=True).start()
    assert main(["experiment", "beta-sweep", "--out", str(out), "--parallel", "2", "--quiet"]) == 143
    err = capsys.readouterr().err
    assert "--parallel 2" in err.splitlines()[-1]
    assert {run_status(out / n) for n in ("beta-1", "beta-3")} == {"stopped"}
    assert main(["experiment", "beta-sweep", "--out", str(out), "--parallel", "2", "--quiet"]) == 0
    assert {run_status(out / n) for n in ("beta-1", "beta-3")} == {"completed"}
    assert (out / "report.html").is_file()


def _launched_like_serial(tmp_path, tiny_beta_sweep, launcher, where: str) -> None:
    spec, serial = tiny_beta_sweep
    spec = dataclasses.replace(spec, evaluate=False)       # the serial fixture's weights are what counts here
    seen: list[ExperimentProgress] = []
    events = list(run_experiment(spec, tmp_path, progress=seen.append, launcher=launcher))
    assert events[-1].status == "completed", events[-1]
    assert sum(where in e.message for e in seen) == len(spec.runs), [e.message for e in seen if e.message]
    assert any(type(e.train_event).__name__ == "EpochSummary" for e in seen), "progress from metrics.jsonl"
    for run in spec.runs:
        assert_same_weights(tmp_path / run.name / "checkpoints" / "best.safetensors",
                            serial / run.name / "checkpoints" / "best.safetensors")
        assert not (tmp_path / run.name / ".lock").exists()


def test_ray_tasks_on_a_local_instance_match_the_serial_runs(tmp_path, tiny_beta_sweep, monkeypatch):
    pytest.importorskip("ray", reason="the ray extra is not installed")
    from core.experiments.launchers.ray_tasks import RayLauncher

    # Ray keeps its session files (sockets: a short path) under RAY_TMPDIR, /tmp/ray otherwise: removed afterwards.
    ray_tmp = tempfile.mkdtemp(prefix="vx-ray-")
    monkeypatch.setenv("RAY_TMPDIR", ray_tmp)
    try:
        launcher = RayLauncher(num_cpus=1, local_cpus=2)     # a local Ray instance with 2 CPU workers
        _launched_like_serial(tmp_path, tiny_beta_sweep, launcher, "a Ray task (1 CPU)")
        import ray

        assert not ray.is_initialized(), "the local instance started for the experiment is shut down"
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def test_slurm_jobs_through_submitits_local_executor_match_the_serial_runs(tmp_path, tiny_beta_sweep):
    pytest.importorskip("submitit", reason="the slurm extra is not installed")
    from core.experiments.launchers.slurm_jobs import SlurmLauncher

    launcher = SlurmLauncher(tmp_path / ".launch" / "submitit", cluster="local", time_min=5, cpus=1)
    _launched_like_serial(tmp_path, tiny_beta_sweep, launcher, "submitit local job")


def test_slurm_job_array_through_submitits_local_executor_matches_the_serial_runs(tmp_path, tiny_beta_sweep,
                                                                                 monkeypatch):
    """--slurm-array: the runs go to the executor in one map_array call (one job array), and train as the serial runs
    did."""
    pytest.importorskip("submitit", reason="the slurm extra is not installed")
    from core.experiments.launchers.slurm_jobs import SlurmLauncher

    launcher = SlurmLauncher(tmp_path / ".launch" / "submitit", cluster="local", time_min=5, cpus=1, array=True,
                             array_parallelism=2)
    arrays: list[list[str]] = []
    map_array = launcher.executor.map_array
    monkeypatch.setattr(launcher.executor, "map_array",
                        lambda fn, jobs: arrays.append([j.name for j in jobs]) or map_array(fn, jobs))
    _launched_like_serial(tmp_path, tiny_beta_sweep, launcher, "submitit local array job")
    assert arrays == [[r.name for r in tiny_beta_sweep[0].runs]], arrays


def test_slurm_job_array_is_one_sbatch_with_its_parallelism(tmp_path, monkeypatch):
    """On Slurm (a stand-in sbatch that records its script): the array mode is one sbatch of --array=0-2%2, one job
    per run otherwise."""
    pytest.importorskip("submitit", reason="the slurm extra is not installed")
    from core.experiments.launchers.job import RunJob
    from core.experiments.launchers.slurm_jobs import SlurmLauncher

    bin_dir, scripts = tmp_path / "bin", tmp_path / "submitted"
    bin_dir.mkdir()
    scripts.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(f'#!/bin/sh\nn=$(ls {scripts} | wc -l)\ncp "$1" {scripts}/$n.sh\n'
                                    'echo "Submitted batch job $((100 + n))"\n')
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    jobs = [RunJob(f"run-{k}", str(tmp_path / "exp" / f"run-{k}"), "{}", False, "quick", False) for k in range(3)]

    array = SlurmLauncher(tmp_path / "a", partition="gpu", array=True, array_parallelism=2)
    handles = array.submit_all(jobs)
    assert [h.job_id for h in handles] == ["100_0", "100_1", "100_2"]
    assert array.where(handles[1]) == "Slurm array job 100_1"
    (script,) = scripts.iterdir()
    lines = script.read_text().splitlines()
    assert "#SBATCH --array=0-2%2" in lines and "#SBATCH --partition=gpu" in lines, lines

    single = SlurmLauncher(tmp_path / "b", partition="gpu")
    assert [h.job_id for h in single.submit_all(jobs)] == ["101", "102", "103"]
    assert not any("--array" in p.read_text() for p in scripts.iterdir() if p.name != script.name)
