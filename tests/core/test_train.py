"""The Trainer: events, run folder, exact resume, pause/stop from another thread, non-finite steps, follow_run."""

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import load_dataset
from core.models.vae import ConditionalVAE
from core.training.checkpoint import from_snapshot, load_model
from core.training.events import (
    CheckpointSaved,
    EpochSummary,
    LogMessage,
    ModelSnapshot,
    Preview,
    RunEnded,
    RunStarted,
    StepMetrics,
    from_record,
    to_record,
)
from core.training.run_folder import follow_run
from core.training.trainer import Trainer

DATA = DataConfig("digits", image_size=16, per_class=12)


def tiny(**train) -> Config:
    base = dict(epochs=2, batch_size=16, log_every=2, device="cpu", seed=3)
    base.update(train)
    return Config(DATA, VAEConfig(latent_dim=4, width=8), TrainConfig(**base))


@pytest.fixture(scope="module")
def dataset():
    return load_dataset(DATA)


def test_events_and_run_folder(dataset, tmp_path):
    events = list(Trainer(tiny(), run_dir=tmp_path, dataset=dataset).run())
    assert isinstance(events[0], RunStarted) and events[0].total_steps == 2 * events[0].steps_per_epoch
    end = events[-1]
    assert isinstance(end, RunEnded) and end.status == "completed" and end.epoch == 2
    kinds = {type(e) for e in events}
    assert {StepMetrics, EpochSummary, Preview, ModelSnapshot, CheckpointSaved} <= kinds
    summary = next(e for e in events if isinstance(e, EpochSummary))
    assert set(summary.val) >= {"loss", "recon", "kl", "elbo"} and summary.kl_per_dim.shape == (4,)
    preview = next(e for e in events if isinstance(e, Preview))
    assert preview.samples.dtype == np.uint8 and preview.samples.shape == (80, 16, 16, 1)
    assert list(preview.sample_labels[::8]) == list(range(10))
    assert preview.reconstructions.shape == preview.originals.shape == (8, 16, 16, 1)
    assert (tmp_path / "samples" / "epoch-0002.png").is_file()
    assert Config.from_json((tmp_path / "config.json").read_text()) == tiny()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[0]["type"] == "start" and records[-1]["type"] == "end"
    assert len(records) == sum(to_record(e) is not None for e in events)
    loaded = load_model(tmp_path / "checkpoints" / "last.safetensors")
    snapshot = [e for e in events if isinstance(e, ModelSnapshot)][-1]
    z, y = torch.randn(2, 4), torch.tensor([1, 2])
    assert torch.equal(loaded.model.decode(z, y), from_snapshot(snapshot).model.decode(z, y))


def final_state(run_dir):
    return load_model(run_dir / "checkpoints" / "last.safetensors", use_ema=False).model.state_dict()


@pytest.mark.parametrize("stop_at", [3, 11])   # 8 steps per epoch: inside the first and the second epoch
def test_interrupted_and_resumed_run_ends_with_the_same_weights(dataset, tmp_path, stop_at):
    cfg = tiny(epochs=3, ema_decay=0.9, log_every=1)
    whole = list(Trainer(cfg, run_dir=tmp_path / "a", dataset=dataset).run())
    assert whole[-1].status == "completed"

    trainer = Trainer(cfg, run_dir=tmp_path / "b", dataset=dataset)
    for ev in trainer.run():
        if isinstance(ev, StepMetrics) and ev.step == stop_at:
            trainer.stop()
        last = ev
    assert last.status == "stopped" and last.step == stop_at
    resumed = Trainer(cfg, resume=tmp_path / "b" / "checkpoints" / "last.safetensors", dataset=dataset)
    events = list(resumed.run())
    assert events[0].start_step == stop_at and events[-1].status == "completed"
    a, b = final_state(tmp_path / "a"), final_state(tmp_path / "b")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    ema_a = load_model(tmp_path / "a" / "checkpoints" / "last.safetensors").model.state_dict()
    ema_b = load_model(tmp_path / "b" / "checkpoints" / "last.safetensors").model.state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)


def test_pause_and_stop_from_another_thread(dataset, tmp_path):
    trainer = Trainer(tiny(epochs=500, log_every=1, preview_every=0), run_dir=tmp_path, dataset=dataset)
    events = []
    thread = threading.Thread(target=lambda: events.extend(trainer.run()))
    thread.start()
    deadline = time.monotonic() + 30
    while not any(isinstance(e, StepMetrics) for e in events) and time.monotonic() < deadline:
        time.sleep(0.01)
    trainer.pause()
    assert trainer.paused
    time.sleep(0.3)
    steps = sum(isinstance(e, StepMetrics) for e in events)
    time.sleep(0.5)
    assert sum(isinstance(e, StepMetrics) for e in events) == steps, "no steps while paused"
    trainer.resume()
    while sum(isinstance(e, StepMetrics) for e in events) < steps + 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    trainer.pause()
    time.sleep(0.1)
    trainer.stop()   # stop while paused must wake the run and end it
    thread.join(30)
    assert not thread.is_alive()
    assert sum(isinstance(e, StepMetrics) for e in events) >= steps + 2
    end = events[-1]
    assert isinstance(end, RunEnded) and end.status == "stopped"
    saved = [e for e in events if isinstance(e, CheckpointSaved)]
    assert saved[-1].tag == "interrupt" and saved[-1].path == end.last_checkpoint
    assert load_model(end.last_checkpoint).step == end.step


def test_paused_time_is_not_training_time(dataset, tmp_path):
    """The ETA (per-step time x steps left) and an epoch's elapsed time leave out the time the run sat paused: a
    1.5 s pause must not show up in them. Only the pause's length is compared with the clock, never training speed."""
    trainer = Trainer(tiny(epochs=500, log_every=1, preview_every=0), run_dir=tmp_path, dataset=dataset)
    arrivals: list[tuple[float, object]] = []   # (when the event reached this consumer, event)

    def consume():
        for e in trainer.run():
            arrivals.append((time.perf_counter(), e))

    def seen(cls, **where):
        return [(t, e) for t, e in arrivals if isinstance(e, cls) and all(getattr(e, k) == v for k, v in where.items())]

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while len(seen(StepMetrics)) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        trainer.pause()
        while not seen(LogMessage, message="paused") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert seen(LogMessage, message="paused"), "the trainer never paused"
        pause_s = 1.5
        time.sleep(pause_s)   # the trainer has been paused at least this long when resume() is called
        trainer.resume()
        n_before = len(arrivals)
        while (not any(isinstance(e, EpochSummary) for _, e in arrivals[n_before:])
               or not any(isinstance(e, StepMetrics) for _, e in arrivals[n_before:])) and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        trainer.stop()
        thread.join(30)
    assert not thread.is_alive()
    total = arrivals[0][1].total_steps
    t_start = arrivals[0][0]   # the run's clock starts after RunStarted reached the consumer

    def training_s(e: StepMetrics) -> float:
        """The training time behind the ETA: eta = per_step * steps left, per_step = training time / steps done."""
        return e.eta_s / (total - e.step) * e.step

    i_paused = next(i for i, (_, e) in enumerate(arrivals) if isinstance(e, LogMessage) and e.message == "paused")
    before = [e for _, e in arrivals[:i_paused] if isinstance(e, StepMetrics)][-1]
    t_after, after = next((t, e) for t, e in arrivals[n_before:] if isinstance(e, StepMetrics))
    # Without paused time, the training time grows by the few steps in between, not by the pause (a generous margin:
    # half the pause).
    assert training_s(after) - training_s(before) < pause_s / 2, (training_s(before), training_s(after))
    assert training_s(after) <= t_after - t_start - pause_s + 0.25
    t_epoch, epoch = next((t, e) for t, e in arrivals[n_before:] if isinstance(e, EpochSummary))
    assert epoch.elapsed_s <= t_epoch - t_start - pause_s + 0.25, (epoch.elapsed_s, t_epoch - t_start)


def nan_on_steps(monkeypatch, bad_steps):
    original = ConditionalVAE.loss

    def loss(self, x, y=None, *, step=0, **kw):
        out = original(self, x, y, step=step, **kw)
        if bad_steps == "all" or step in bad_steps:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(ConditionalVAE, "loss", loss)


def test_non_finite_steps_are_skipped_and_counted(dataset, monkeypatch):
    nan_on_steps(monkeypatch, {2, 3, 6})
    trainer = Trainer(tiny(), dataset=dataset)
    events = list(trainer.run())
    assert events[-1].status == "completed"
    warnings = [e for e in events if isinstance(e, LogMessage) and e.level == "warning"]
    assert [w.step for w in warnings] == [2, 3, 6] and "non-finite loss" in warnings[0].message
    assert trainer.progress.skipped_steps == 3
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_many_bad_steps_in_a_row_fail_the_run_keeping_the_checkpoint(dataset, monkeypatch, tmp_path):
    steps_per_epoch = -(-len(dataset.train) // 16)
    nan_on_steps(monkeypatch, set(range(steps_per_epoch, 1000)))   # the first epoch is fine, then all NaN
    trainer = Trainer(tiny(epochs=5, max_bad_steps=3), run_dir=tmp_path, dataset=dataset)
    events = list(trainer.run())
    end = events[-1]
    assert end.status == "failed" and "3 non-finite steps in a row" in end.reason
    assert end.step == steps_per_epoch + 3 and end.epoch == 1
    # The weights in memory (the skipped steps changed nothing) are saved, and the message says where.
    assert f"the last good weights (step {steps_per_epoch}) are saved at {end.last_checkpoint}" in end.reason
    saved = load_model(end.last_checkpoint, use_ema=False)
    assert saved.epoch == 1 and saved.step == end.step
    for a, b in zip(saved.model.parameters(), trainer.model.parameters(), strict=True):
        assert torch.equal(a, b) and torch.isfinite(a).all()


def test_a_run_that_is_never_finite_says_so(dataset, monkeypatch):
    nan_on_steps(monkeypatch, "all")
    end = list(Trainer(tiny(epochs=5, max_bad_steps=2), dataset=dataset).run())[-1]
    assert end.status == "failed" and "no run folder, so nothing was saved" in end.reason


def test_a_full_disk_ends_the_run_with_one_message_and_keeps_the_last_checkpoint(dataset, monkeypatch, tmp_path):
    """ENOSPC while saving (and while writing the run record): the run fails with a plain reason, the error
    handling itself does not fail, and the checkpoint saved before the disk filled up still loads."""
    import errno

    from core.training import resume as resume_module  # where the Trainer's checkpoints are saved

    real_save = resume_module.save_checkpoint
    calls = []

    def save(path, **kw):
        calls.append(path)
        if len(calls) > 1:        # the first epoch's "last" is written; then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, **kw)

    monkeypatch.setattr(resume_module, "save_checkpoint", save)
    trainer = Trainer(tiny(epochs=3), run_dir=tmp_path, dataset=dataset)
    events = []
    for ev in trainer.run():
        events.append(ev)
        if len(calls) == 1 and trainer.record._file is not None:   # from now on the run record cannot grow either
            def full(_text):
                raise OSError(errno.ENOSPC, "No space left on device")
            trainer.record._file.write = full
    end = events[-1]
    assert end.status == "failed" and end.reason.startswith("the disk is full") and "resume" in end.reason
    assert "Traceback" not in end.reason
    assert load_model(tmp_path / "checkpoints" / "last.safetensors").epoch == 1
    assert not list((tmp_path / "checkpoints").glob(".*tmp*"))


def test_an_exception_ends_the_run_as_failed(dataset, monkeypatch):
    def boom(self, x, y=None, *, step=0, **kw):
        raise RuntimeError("boom")

    monkeypatch.setattr(ConditionalVAE, "loss", boom)
    events = list(Trainer(tiny(), dataset=dataset).run())
    assert events[-1].status == "failed" and events[-1].reason == "boom"
    assert any(isinstance(e, LogMessage) and e.level == "error" for e in events)


def test_early_stopping_and_step_budget(dataset):
    events = list(Trainer(tiny(epochs=5, max_steps=3), dataset=dataset).run())
    assert events[-1].status == "completed" and events[-1].step == 3
    trainer = Trainer(tiny(epochs=50, early_stopping=1, lr=0.0), dataset=dataset)   # lr 0: never improves
    events = list(trainer.run())
    assert events[-1].status == "early_stopped" and events[-1].epoch == 2


def test_unreadable_files_of_a_folder_dataset_are_logged_in_the_run_record(tmp_path):
    root = tmp_path / "pictures"
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (root / cls).mkdir(parents=True)
        for i in range(6):
            Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(root / cls / f"{i}.png")
    (root / "cats" / "x.png").write_bytes(b"garbage, not a PNG")
    for i in range(6):
        (root / "dogs" / f"y{i}.png").write_bytes(b"")
    cfg = Config(DataConfig(f"folder:{root}", image_size=16), VAEConfig(latent_dim=4, width=8),
                 TrainConfig(epochs=1, batch_size=8, device="cpu"))
    events = list(Trainer(cfg, run_dir=tmp_path / "run").run())
    assert events[-1].status == "completed"
    assert isinstance(events[0], RunStarted) and isinstance(events[1], LogMessage)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if r["type"] == "log" and r["level"] == "warning"]
    assert len(logged) == 1 and logged[0]["step"] == 0
    named = ", ".join(str(Path(n)) for n in ("cats/x.png", "dogs/y0.png", "dogs/y1.png", "dogs/y2.png", "dogs/y3.png"))
    assert logged[0]["message"] == f"skipped 7 unreadable file(s) in {root.resolve()}: {named} ..."


def test_follow_run_sees_lines_appended_by_another_writer(tmp_path):
    records = [to_record(RunStarted(str(tmp_path), {}, {}, "cpu", 10, 5)),
               to_record(StepMetrics(1, 1, {"loss": 1.0}, 1e-3, 10.0, 1.0, 0.1)),
               to_record(RunEnded("completed", "done", 10, 2))]

    def writer():
        time.sleep(0.1)
        with open(tmp_path / "metrics.jsonl", "w") as f:
            for r in records:
                line = json.dumps(r) + "\n"
                f.write(line[:10])   # half a line first: the reader must wait for the newline
                f.flush()
                time.sleep(0.05)
                f.write(line[10:])
                f.flush()
                time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    seen = list(follow_run(tmp_path, poll_s=0.01))
    thread.join()
    assert [type(e) for e in seen] == [RunStarted, StepMetrics, RunEnded]
    assert seen[1].metrics == {"loss": 1.0}
    stopped = list(follow_run(tmp_path / "never", poll_s=0.01, should_stop=lambda: True))
    assert stopped == []


def test_records_say_when_they_were_written_and_follow_run_keeps_it(dataset, tmp_path):
    """Each metrics.jsonl record has the wall-clock time it was written; events rebuilt from the records carry it
    (a reader shows a run's history at its own times), events made in this process have none (they happen now), and
    an older run folder without times, or a damaged time, still follows."""
    t0 = time.time()
    made_here = list(Trainer(tiny(epochs=1), run_dir=tmp_path, dataset=dataset).run())
    t1 = time.time()
    assert all(getattr(e, "time", None) is None for e in made_here)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    times = [r["time"] for r in records]
    assert all(isinstance(t, float) for t in times) and times == sorted(times)
    assert t0 - 1 <= times[0] and times[-1] <= t1 + 1
    followed = list(follow_run(tmp_path, poll_s=0.01, models=False))
    assert [e.time for e in followed] == times
    assert followed[0] == made_here[0]   # the time is not part of what the event says
    assert to_record(followed[1])["time"] == times[1]   # copying a record keeps its time

    old = {k: v for k, v in records[-1].items() if k != "time"}
    assert from_record(old).time is None and from_record(old) == followed[-1]
    assert from_record({**old, "time": "yesterday"}).time is None
    assert from_record({**old, "time": float("nan")}).time is None


def test_follow_run_shows_the_newest_model_and_a_preview(tmp_path):
    """Following a finished run folder yields what the in-process Trainer yields for the dashboard: a snapshot of the
    newest checkpoint and a sample preview (with reconstructions of the run's validation images), before the end."""
    from core.config import Config, DataConfig, TrainConfig, VAEConfig
    from core.training.events import ModelSnapshot, Preview, RunEnded

    config = Config(DataConfig("digits", image_size=16), VAEConfig(latent_dim=4, width=8),
                    TrainConfig(epochs=2, batch_size=128, log_every=5, preview_every=0))
    for _ in Trainer(config, run_dir=tmp_path).run():
        pass
    events = list(follow_run(tmp_path, poll_s=0.01))
    assert isinstance(events[-1], RunEnded)
    snapshots = [e for e in events if isinstance(e, ModelSnapshot)]
    previews = [e for e in events if isinstance(e, Preview)]
    assert len(snapshots) == 1 and snapshots[0].epoch == 2   # only the newest checkpoint is loaded
    assert len(previews) == 1
    assert previews[0].samples.shape == (80, 16, 16, 1) and previews[0].reconstructions.shape == (8, 16, 16, 1)
    assert not any(isinstance(e, ModelSnapshot) for e in follow_run(tmp_path, poll_s=0.01, models=False))


def test_cosine_schedule_decays_the_logged_learning_rate(tmp_path):
    from core.config import Config, DataConfig, TrainConfig, VAEConfig
    from core.training.events import StepMetrics
    from core.training.trainer import cosine_lr

    config = Config(DataConfig("digits", image_size=16), VAEConfig(latent_dim=4, width=8),
                    TrainConfig(epochs=2, batch_size=128, log_every=2, preview_every=0, lr=1e-2,
                                lr_schedule="cosine"))
    lrs = [e.lr for e in Trainer(config).run() if isinstance(e, StepMetrics)]
    assert lrs == sorted(lrs, reverse=True) and lrs[0] < 1e-2 and lrs[-1] < 1e-3
    assert cosine_lr(1.0, 0, 10) == 1.0 and cosine_lr(1.0, 10, 10) == 0.0 and abs(cosine_lr(1.0, 5, 10) - 0.5) < 1e-12


def test_following_a_damaged_run_record_skips_what_it_cannot_read(tmp_path):
    """Garbage bytes, a half-written line, JSON that is not a record and records with wrong field types are skipped;
    the readable events still arrive, and the follower never raises."""
    from core.training.events import to_record

    good = [StepMetrics(10, 1, {"loss": 1.5}, 1e-3, 100.0, 5.0, 0.1), StepMetrics(20, 1, {"loss": 1.2}, 1e-3, 100.0,
                                                                                      4.0, 0.2)]
    lines = [json.dumps(to_record(good[0])).encode(), b"\xff\xfe\x00garbage\x80",
             json.dumps([1, 2, 3]).encode(), json.dumps({"type": "step", "step": "ten", "epoch": 1}).encode(),
             json.dumps({"type": "step", "step": 5, "epoch": 1, "metrics": {"loss": "x"}, "lr": 1, "images_per_s": 1,
                         "eta_s": 1, "progress": 0.1}).encode(),
             json.dumps({"type": "epoch", "epoch": None}).encode(), b"null", b"",
             json.dumps(to_record(good[1])).encode()]
    (tmp_path / "metrics.jsonl").write_bytes(b"\n".join(lines) + b"\n" + b'{"type": "step", "st')   # half a line
    seen, said = [], []
    for ev in follow_run(tmp_path, poll_s=0.01, models=False, should_stop=lambda: len(seen) >= 2):
        (said if isinstance(ev, LogMessage) else seen).append(ev)
    assert [type(e) for e in seen] == [StepMetrics, StepMetrics]
    assert [e.step for e in seen] == [10, 20] and seen[1].metrics == {"loss": 1.2}
    # Each skipped line is said (the first three with their line and reason), then how many in all.
    assert [m.message for m in said] == [
        "skipped line 2 of metrics.jsonl: not a JSON record",
        "skipped line 3 of metrics.jsonl: not a JSON object",
        "skipped line 4 of metrics.jsonl: step record: Expected `int`, got `str` - at `$.step`",
        "6 damaged line(s) of metrics.jsonl skipped so far"]
