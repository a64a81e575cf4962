"""A corpus of bad inputs, run as a hostile user would: damaged checkpoints, config files, arguments, output paths,
image folders, run folders and stops. Each case runs the real CLI in-process (`core.cli.main`, as `vae-explorer`
does) and is judged by the product's promise:

- no traceback: a user error is one line `vae-explorer: error: ...`;
- the right exit status: 0 (done), 2 (the user's to fix), 130/143 (stopped by Ctrl-C / SIGTERM);
- nothing lost: a checkpoint the command was given is unchanged, and a stopped run keeps a loadable checkpoint.

Prints one line per case that failed and the counts (tried / tracebacks / wrong exit codes / data lost).
`python bench/bad_inputs.py [--list]` (about two minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from core import cli  # noqa: E402
from core.config import Config, DataConfig, TrainConfig, VAEConfig  # noqa: E402
from core.data.datasets import DatasetMeta  # noqa: E402
from core.models import build_model  # noqa: E402
from core.training.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402

TINY = ["--epochs", "1", "--per-class", "5", "--batch-size", "16", "--set", "model.width=4", "--set",
        "model.stages=1", "--set", "model.latent_dim=2", "--quiet"]


@dataclass
class Case:
    kind: str
    what: str
    argv: list[str]
    ok_codes: tuple[int, ...] = (0, 2)
    keep: list[Path] = field(default_factory=list)          # files that must be unchanged afterwards
    after: object = None                                     # a callable(code) -> str: "" or what was lost
    signal_after_s: float | None = None                      # send SIGTERM/SIGINT this long after the start
    signum: int = signal.SIGTERM
    shows: tuple[str, ...] = ()                              # what stdout must name (runs still listed)
    runner: object = None                                    # a callable() -> (code, out, err) instead of cli.main


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"


def write_safetensors(path: Path, header: dict, body: bytes) -> Path:
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + body)
    return path


def checkpoint_cases(work: Path) -> list[Case]:
    meta = DatasetMeta("digits", tuple(str(i) for i in range(10)), 1, 16)
    cfg = Config(DataConfig("digits", image_size=16), VAEConfig(latent_dim=2, width=4, stages=1), TrainConfig())
    good = save_checkpoint(work / "good.safetensors", model=build_model(cfg.model, meta), config=cfg, meta=meta,
                           train_state={"step": 3, "epoch": 1}, metrics={"elbo": -1.0})
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    bad: list[tuple[str, Path]] = []

    def variant(name: str, mutate) -> None:
        h = json.loads(json.dumps(header))
        mutate(h)
        bad.append((name, write_safetensors(work / f"ck-{len(bad):03d}.safetensors", h, body)))

    def set_json(key, path, value):
        def mutate(h):
            obj = json.loads(h["__metadata__"][key])
            target = obj
            for k in path[:-1]:
                target = target[k]
            if path:
                target[path[-1]] = value
            else:
                obj = value
            h["__metadata__"][key] = json.dumps(obj)
        return mutate

    values = [None, -1, "x", [], {}, 2**70, float("nan"), True]
    for v in values:
        variant(f"meta.image_size={v!r}", set_json("meta", ["image_size"], v))
        variant(f"meta.channels={v!r}", set_json("meta", ["channels"], v))
        variant(f"config.model.latent_dim={v!r}", set_json("config", ["model", "latent_dim"], v))
        variant(f"train_state.step={v!r}", set_json("train_state", ["step"], v))
        variant(f"metrics.elbo={v!r}", set_json("metrics", ["elbo"], v))
    for v in ([], "x", None, 3):
        variant(f"meta.class_names={v!r}", set_json("meta", ["class_names"], v))
        variant(f"config.model={v!r}", set_json("config", ["model"], v))
        variant(f"train_state={v!r}", set_json("train_state", [], v))
    variant("format_version=99", lambda h: h["__metadata__"].update(format_version="99"))
    variant("format_version=x", lambda h: h["__metadata__"].update(format_version="x"))
    variant("format missing", lambda h: h["__metadata__"].pop("format"))
    variant("config not JSON", lambda h: h["__metadata__"].update(config="{"))
    variant("kind=gan", set_json("config", ["model", "kind"], "gan"))
    variant("meta image size disagrees with config", set_json("meta", ["image_size"], 32))
    first = sorted(k for k in header if k != "__metadata__")[0]
    variant("offsets not numbers", lambda h: h[first].update(data_offsets=["a", "b"]))
    variant("offsets negative", lambda h: h[first].update(data_offsets=[-5, 3]))
    variant("offsets past the end", lambda h: h[first].update(data_offsets=[0, 10**9]))
    variant("shape negative", lambda h: h[first].update(shape=[-1, 3]))
    variant("shape wrong", lambda h: h[first].update(shape=[1, 2, 3]))
    variant("dtype unknown", lambda h: h[first].update(dtype="Q99"))
    for cut in (1, 7, 8, 100, len(raw) // 2, len(raw) - 10):
        p = work / f"cut-{cut}.safetensors"
        p.write_bytes(raw[:cut])
        bad.append((f"truncated to {cut} bytes", p))
    for name, data in (("empty file", b""), ("random bytes", os.urandom(4096)),
                       ("a pickle (torch.save)", b"\x80\x04\x95" + os.urandom(64)),
                       ("a zip (torch.save)", b"PK\x03\x04" + os.urandom(64)),
                       ("header length 2**60", struct.pack("<Q", 2**60) + b"{}"),
                       ("header not JSON", struct.pack("<Q", 4) + b"{{{{"),
                       ("header JSON list", struct.pack("<Q", 2) + b"[]"), ("text", b"hello world\n")):
        p = work / f"{name.replace(' ', '-')}.safetensors"
        p.write_bytes(data)
        bad.append((name, p))
    png = work / "image.safetensors"
    Image.new("L", (8, 8)).save(png, format="PNG")
    bad.append(("a PNG named .safetensors", png))
    bad.append(("a folder", work))
    bad.append(("a missing file", work / "nope.safetensors"))

    cases = []
    for name, path in bad:
        out = str(work / "out" / "s.png")
        cases.append(Case("checkpoint", f"sample: {name}", ["sample", str(path), "--n", "1", "--out", out],
                          keep=[path] if path.is_file() else []))
    for name, path in bad[::4]:   # resuming from them too (a sample of the kinds)
        cases.append(Case("checkpoint", f"train --resume: {name}",
                          ["train", "--resume", str(path), "--out", str(work / "resume-run"), *TINY],
                          keep=[path] if path.is_file() else []))
    cases.append(Case("checkpoint", "sample: the good one", ["sample", str(good), "--out", str(work / "g.png")],
                      ok_codes=(0,), keep=[good]))
    return cases


def config_cases(work: Path) -> list[Case]:
    base = json.loads(Config().to_json())
    docs: list[tuple[str, bytes]] = []

    def doc(name: str, obj) -> None:
        docs.append((name, json.dumps(obj).encode()))

    for section in ("data", "model", "train"):
        for v in (None, 3, "x", [], True):
            bad = json.loads(json.dumps(base))
            bad[section] = v
            doc(f"{section} is {v!r}", bad)
    for key, v in (("data.image_size", -3), ("data.image_size", "big"), ("data.name", 7), ("data.classes", 5),
                   ("train.lr", "fast"), ("train.lr", -1), ("train.epochs", 0), ("train.seed", 2**70),
                   ("train.batch_size", 1e12), ("model.beta", "nan"), ("model.latent_dim", 0), ("model.kind", "gan"),
                   ("model.kind", ["vae"]), ("data.unknown", 1), ("train.device", "cuda:9")):
        bad = json.loads(json.dumps(base))
        section, name = key.split(".")
        bad[section][name] = v
        doc(f"{key}={v!r}", bad)
    doc("a list", [1, 2])
    doc("a string", "config")
    doc("null", None)
    docs += [("empty file", b""), ("not UTF-8", b"\xff\xfe\x00{"), ("deep nesting", b"[" * 100_000),
             ("trailing garbage", json.dumps(base).encode() + b"}}"), ("NaN literal", b'{"train": {"lr": NaN}}')]
    cases = []
    for i, (name, data) in enumerate(docs):
        p = work / f"config-{i:02d}.json"
        p.write_bytes(data)
        cases.append(Case("config", f"train --config: {name}", ["train", "--config", str(p), "--out",
                                                               str(work / f"cfg-run-{i}"), *TINY]))
    cases.append(Case("config", "train --config: a folder", ["train", "--config", str(work)]))
    cases.append(Case("config", "train --config: missing", ["train", "--config", str(work / "nope.json")]))
    return cases


def argument_cases(work: Path) -> list[Case]:
    ck = str(work / "good.safetensors")
    out = str(work / "a.png")
    argvs = [
        ["trian"], ["train", "--bogus"], ["sample"], ["eval"], ["train", "--epochs", "0"],
        ["train", "--epochs", "-1"], ["train", "--epochs", "many"], ["train", "--epochs", "1e3"],
        ["train", "--lr", "nan"], ["train", "--lr", "inf"], ["train", "--lr", "-1"], ["train", "--batch-size", "0"],
        ["train", "--seed", "-1"], ["train", "--seed", str(2**64)], ["train", "--image-size", "3"],
        ["train", "--image-size", "100000"], ["train", "--dataset", "nope"], ["train", "--dataset", ""],
        ["train", "--dataset", "folder:/no/such/folder"], ["train", "--dataset", f"folder:{ck}"],
        ["train", "--classes", "eleven"], ["train", "--classes", ","], ["train", "--per-class", "-5"],
        ["train", "--device", "cuda:7"], ["train", "--device", "tpu"], ["train", "--threads", "-2"],
        ["train", "--set", "nope"], ["train", "--set", "model.nope=1"], ["train", "--set", "model.latent_dim=x"],
        ["train", "--set", "=3"], ["train", "--preset", "nope"], ["train", "--preset", "digits", "--config", ck],
        ["train", "--model", "gan"], ["train", "--resume", str(work)],
        ["sample", ck, "--n", "0"], ["sample", ck, "--n", "100000"], ["sample", ck, "--scale", "100000"],
        ["sample", ck, "--temperature", "nan"], ["sample", ck, "--temperature", "1e9"],
        ["sample", ck, "--classes", "Eleven"], ["sample", ck, "--classes", ","], ["sample", ck, "--classes", "-1"],
        ["sample", ck, "--seed", str(2**64)], ["sample", ck, "--steps", "5"], ["sample", ck, "--guidance", "2"],
        ["sample", ck, "--sampler", "euler"], ["sample", ck, "--device", "cuda"], ["sample", ck, "--out", "x.jpg"],
        ["eval", ck, "--split", "nope"], ["eval", ck, "--iwae-k", "-1"], ["eval", ck, "--iwae-k", "10000000"],
        ["eval", ck, "--samples-per-class", "0"], ["eval", ck, "--data-root", "/no/such/root"],
        ["sample", ck, "--prior", ck], ["sample", ck, "--from", "diffusion-prior", "--prior", ck],
        ["sample", ck, "--from", "diffusion-prior", "--steps", "0"], ["eval", ck, "--prior-train-steps", "5"],
        ["sample", ck, "--from", "diffusion-prior", "--near", ck], ["eval", ck, "--from", "flow"],
        ["eval", ck, "--save"], ["experiment", "beta-sweep", "--out", str(work / "exp"), "--from", "mixture"],
        ["experiment", "beta-sweep", "--out", str(work / "exp"), "--prior-train-steps", "5"],
        ["restore-eval"], ["restore-eval", "--vae", ck, "--corruptions", "fog"],
        ["restore-eval", "--vae", ck, "--corruptions", ","], ["restore-eval", "--vae", ck, "--strengths", "1e9"],
        ["restore-eval", "--vae", ck, "--strengths", "-1"], ["restore-eval", "--vae", ck, "--strengths", "x"],
        ["restore-eval", "--vae", ck, "--n", "0"], ["restore-eval", "--vae", ck, "--out", "rows.txt"],
        ["restore-eval", "--diffusion", ck],
    ]
    # The tiny-run flags go first, so that the case's own (bad) value of a flag is the one that counts.
    cases = [Case("arguments", " ".join(a)[:70], [a[0], *TINY, *a[1:]] if a[0] == "train" else a) for a in argvs]
    for c in cases:
        if c.argv[0] == "sample" and "--out" not in c.argv:
            c.argv += ["--out", out]
    return cases


def output_cases(work: Path) -> list[Case]:
    ck = str(work / "good.safetensors")
    return [
        Case("output", "sample --out under a file", ["sample", ck, "--out", f"{ck}/x.png"]),
        Case("output", "sample --out is a folder", ["sample", ck, "--out", str(work)]),
        Case("output", "sample --out in /proc", ["sample", ck, "--out", "/proc/vae-explorer/x.png"]),
        Case("output", "restore-eval --out under a file",
             ["restore-eval", "--vae", ck, "--n", "2", "--corruptions", "gaussian", "--out", f"{ck}/r.csv"]),
        Case("output", "restore-eval --out in /proc",
             ["restore-eval", "--vae", ck, "--n", "2", "--corruptions", "gaussian", "--out", "/proc/x/r.csv"]),
        Case("output", "train --out under a file", ["train", "--out", f"{ck}/run", *TINY]),
        Case("output", "train --out is a file", ["train", "--out", ck, *TINY], keep=[Path(ck)]),
        Case("output", "train --out in /proc", ["train", "--out", "/proc/x/run", *TINY]),
        Case("output", "train --out in /sys", ["train", "--out", "/sys/x/run", *TINY]),
        Case("output", "sample --out with no extension", ["sample", ck, "--out", str(work / "grid")]),
    ]


def folder_cases(work: Path) -> list[Case]:
    def folder(name: str, files: dict[str, object]) -> Path:
        root = work / "folders" / name
        for rel, content in files.items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                p.write_bytes(content)
            else:
                content.save(p)
        return root

    rng = np.random.default_rng(0)

    def img(mode: str, size=(20, 20)) -> Image.Image:
        if mode == "I;16":
            return Image.fromarray((rng.random(size) * 65535).astype(np.uint16))
        return Image.fromarray((rng.random((*size, 3)) * 255).astype(np.uint8)).convert(mode)

    good = {f"{c}/{i}.png": img("L") for c in ("a", "b") for i in range(4)}
    roots = {
        "16-bit greyscale": {**good, "a/x16.png": img("I;16")},
        "palette": {**good, "a/p.png": img("P")},
        "alpha": {**good, "a/rgba.png": img("RGBA"), "b/la.png": img("LA")},
        "CMYK": {**good, "a/c.tif": img("CMYK")},
        "corrupt file": {**good, "a/bad.png": b"\x89PNG\r\n\x1a\nnot really"},
        "zero-byte file": {**good, "a/empty.png": b""},
        "text file": {**good, "b/readme.txt": b"hello"},
        "class with no images": {**good, "c/readme.txt": b"hello"},
        "no class folders": {"x.png": img("L")},
        "empty": {},
        "nested deeper": {**good, "a/deeper/more/x.png": img("L")},
        "huge declared size": {**good, "a/bomb.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x00\x00\x00\x01"
                                                      b"\x00\x00\x08\x00\x00\x00\x00"},
        "RGB and grey mixed": {**good, "b/rgb.png": img("RGB")},
        "tiny images": {f"{c}/{i}.png": img("L", (2, 2)) for c in ("a", "b") for i in range(3)},
        "one class": {f"a/{i}.png": img("L") for i in range(5)},
    }
    cases = []
    for name, files in roots.items():
        root = folder(name.replace(" ", "-"), files)
        if name == "empty":
            root.mkdir(parents=True, exist_ok=True)
        cases.append(Case("image folder", f"train on a folder: {name}",
                          ["train", *TINY, "--per-class", "0", "--dataset", f"folder:{root}", "--image-size", "16",
                           "--out", str(work / f"run-{name.replace(' ', '-')}")]))
    return cases


def stop_cases(work: Path) -> list[Case]:
    def kept(run_dir: Path):
        def check(code: int) -> str:
            ck = run_dir / "checkpoints" / "last.safetensors"
            if not ck.is_file():
                return "no checkpoint after the stop"
            try:
                load_checkpoint(ck)
            except Exception as e:  # noqa: BLE001 - any failure to load is data lost
                return f"the checkpoint does not load: {e}"
            return ""
        return check

    cases = []
    for i, (signum, delay) in enumerate(((signal.SIGTERM, 3.0), (signal.SIGINT, 3.0), (signal.SIGTERM, 6.0),
                                         (signal.SIGINT, 6.0))):
        run_dir = work / f"stopped-{i}"
        cases.append(Case("stop", f"{signal.Signals(signum).name} after {delay:g} s of training",
                          ["train", "--preset", "digits", "--epochs", "50", "--out", str(run_dir), "--quiet"],
                          ok_codes=(128 + signum,), after=kept(run_dir), signal_after_s=delay, signum=signum))
    return cases


def run_folder_cases(work: Path) -> list[Case]:
    """One writer per run folder; a finished run is never overwritten without --overwrite (which moves it aside)."""
    finished = work / "finished-run"
    assert cli.main(["train", *TINY, "--out", str(finished)]) == 0
    files = [p for p in finished.rglob("*") if p.is_file()]
    cases = [Case("run folder", f"train again into a finished run {' '.join(extra)}".strip(),
                  ["train", *TINY, *extra, "--out", str(finished)], ok_codes=(2,), keep=files)
             for extra in ([], ["--epochs", "2"], ["--preset", "digits"], ["--model", "diffusion"])]
    cases.append(Case("run folder", "train --resume --overwrite of the same run",
                      ["train", "--resume", str(finished / "checkpoints" / "last.safetensors"), "--overwrite",
                       "--quiet"], ok_codes=(2,), keep=files))
    other = work / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    cases.append(Case("run folder", "train into a folder holding other files", ["train", *TINY, "--out", str(other)],
                      ok_codes=(2,), keep=[other / "notes.txt"]))
    held = work / "held-run"
    cases.append(Case("run folder", "train into a folder another writer holds", ["train", *TINY, "--out", str(held)],
                      ok_codes=(2,), runner=_while_held(held, ["train", *TINY, "--out", str(held)])))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for name, content in (("dead-writer", json.dumps({"host": socket.gethostname(), "pid": dead.pid,
                                                       "started": time.time() - 60, "command": "x"})),
                          ("garbage-lock", "\x00\xff not json")):
        folder = work / name
        folder.mkdir()
        (folder / ".lock").write_text(content)
        os.utime(folder / ".lock", (time.time() - 60, time.time() - 60))
        cases.append(Case("run folder", f"a stale lock ({name}) is taken over", ["train", *TINY, "--out",
                                                                                 str(folder)], ok_codes=(0,)))
    replaced = work / "replaced-run"
    shutil.copytree(finished, replaced)
    before = {p.relative_to(replaced): digest(p) for p in replaced.rglob("*") if p.is_file()}

    def moved_aside(code: int) -> str:
        (moved,) = [p for p in work.iterdir() if p.name.startswith("replaced-run.replaced-")] or [None]
        if moved is None:
            return "the earlier run was not moved aside"
        after = {p.relative_to(moved): digest(p) for p in moved.rglob("*") if p.is_file()}
        return "" if after == before else "the moved-aside run differs from the earlier one"

    cases.append(Case("run folder", "train --overwrite moves the finished run aside", ["train", *TINY, "--overwrite",
                                                                                      "--out", str(replaced)],
                      ok_codes=(0,), after=moved_aside))
    twice = work / "twice"
    cases.append(Case("run folder", "two real train processes into one folder", [], ok_codes=(0,),
                      runner=_two_processes(twice), after=lambda code: _one_run_logged(twice)))
    sighup = work / "sighup"
    cases.append(Case("stop", "SIGHUP (the terminal closed) during training", [], ok_codes=(129,),
                      runner=_signalled_process(sighup, signal.SIGHUP), after=_kept(sighup)))
    return cases


def _while_held(folder: Path, argv: list[str]):
    def run() -> tuple[int | None, str, str]:
        from core.training.run_folder import acquire_run_folder

        with acquire_run_folder(folder, command="bad_inputs"):
            return run_case(Case("", "", argv))
    return run


def _train_process(folder: Path, epochs: str = "200") -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "core.cli", "train", *TINY, "--epochs", epochs, "--out",
                             str(folder)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _wait_for_a_step(folder: Path, proc: subprocess.Popen) -> None:
    metrics, deadline = folder / "metrics.jsonl", time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not (
            metrics.is_file() and '"type": "step"' in metrics.read_text(errors="replace")):
        time.sleep(0.1)


def _two_processes(folder: Path):
    """Both start at once: one trains, the other is refused (exit 2, one line); returns the refused one's."""
    def run() -> tuple[int | None, str, str]:
        first, second = _train_process(folder, "3"), _train_process(folder, "3")
        outs = [p.communicate(timeout=300) for p in (first, second)]
        codes = sorted(p.returncode for p in (first, second))
        err = next((e for p, (_, e) in zip((first, second), outs, strict=True) if p.returncode == 2), "")
        if codes != [0, 2] or "is being written by process" not in err:
            return 1, "", f"exit codes {codes}: {err or outs[0][1]}"
        return 0, "", ""
    return run


def _one_run_logged(folder: Path) -> str:
    starts = (folder / "metrics.jsonl").read_text().count('"type": "start"')
    return "" if starts == 1 else f"{starts} runs interleaved in one metrics.jsonl"


def _signalled_process(folder: Path, signum: int):
    def run() -> tuple[int | None, str, str]:
        proc = _train_process(folder)
        _wait_for_a_step(folder, proc)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=300)
        return proc.returncode, out, err
    return run


def _kept(run_dir: Path):
    def check(code: int) -> str:
        ck = run_dir / "checkpoints" / "last.safetensors"
        if not ck.is_file():
            return "no checkpoint after the stop"
        try:
            load_checkpoint(ck)
        except Exception as e:  # noqa: BLE001 - any failure to load is data lost
            return f"the checkpoint does not load: {e}"
        return ""
    return check


def history_cases(work: Path) -> list[Case]:
    """A runs folder with one damaged run beside a good one: `runs` and `report` list both (exit 0)."""
    good = work / "history-good"
    assert cli.main(["train", *TINY, "--set", "train.log_every=1", "--out", str(good)]) == 0
    records = [json.loads(line) for line in (good / "metrics.jsonl").read_text().splitlines()]
    damages: list[tuple[str, object]] = []
    for kind, name, value in (
            ("start", "config", "abc"), ("start", "meta", None), ("start", "total_steps", -1),
            ("end", "best_val", [1]), ("end", "best_val", float("inf")), ("end", "best_val", float("nan")),
            ("end", "status", 7), ("end", "step", "12"), ("end", "step", True), ("epoch", "kl_per_dim", {"a": 1}),
            ("epoch", "epoch", 1e308), ("epoch", "epoch", -3), ("epoch", "epoch", 2**70), ("epoch", "val", [1]),
            ("epoch", "val", {"loss": "x"}), ("epoch", "is_best", "yes"), ("checkpoint", "path", ["x"]),
            ("checkpoint", "step", 1.5), ("step", "lr", "fast"), ("step", "metrics", None),
            ("end", "time", 1e300), ("epoch", "time", float("-inf"))):
        def damage(recs, kind=kind, name=name, value=value):
            rec = next(r for r in recs if r["type"] == kind)
            rec[name] = value
            return "".join(json.dumps(r) + "\n" for r in recs).encode()
        damages.append((f"{kind}.{name}={value!r}", damage))
    damages += [("a 3 MB line", lambda recs: "".join(json.dumps(r) + "\n" for r in recs).encode()
                 + b'{"type": "log", "message": "' + b"x" * (3 << 20) + b'"}\n'),
                ("nesting 100,000 deep", lambda recs: b"[" * 100_000 + b"]" * 100_000 + b"\n"
                 + "".join(json.dumps(r) + "\n" for r in recs).encode()),
                ("not UTF-8", lambda recs: b"\xff\xfe\x00\x80\n"
                 + "".join(json.dumps(r) + "\n" for r in recs).encode()),
                ("only damaged records", lambda recs: b'{"type": "epoch", "epoch": "one"}\n')]
    cases = []
    for i, (what, damage) in enumerate(damages):
        root = work / f"history-{i:02d}"
        shutil.copytree(good, root / "good")
        shutil.copytree(good, root / "damaged")
        (root / "damaged" / "metrics.jsonl").write_bytes(damage(json.loads(json.dumps(records))))
        keep = [root / "damaged" / "metrics.jsonl", root / "good" / "metrics.jsonl"]
        cases.append(Case("run history", f"runs: {what}", ["runs", str(root)], ok_codes=(0,), keep=keep,
                          shows=("good", "damaged")))
        cases.append(Case("run history", f"report: {what}", ["report", str(root / "good"), str(root / "damaged"),
                                                             "--out", str(work / f"report-{i:02d}.html")],
                          ok_codes=(0,), keep=keep))
    specials = []
    if hasattr(os, "mkfifo"):
        specials += [("metrics.jsonl is a FIFO", lambda m: (m.unlink(), os.mkfifo(m))),
                     ("config.json is a FIFO", lambda m: ((m.parent / "config.json").unlink(),
                                                          os.mkfifo(m.parent / "config.json")))]
    specials += [("metrics.jsonl links to /dev/zero", lambda m: (m.unlink(), m.symlink_to("/dev/zero"))),
                 ("metrics.jsonl links out of the run", lambda m: (m.unlink(), m.symlink_to(good / "metrics.jsonl"))),
                 ("a 10 GB sparse metrics.jsonl", lambda m: os.truncate(m, 10 * 10**9)),
                 ("10 GB sparse sample PNGs", lambda m: [os.truncate(p, 10 * 10**9)
                                                         for p in (m.parent / "samples").glob("*.png")]),
                 ("eval.json is a FIFO" if hasattr(os, "mkfifo") else "eval.json is garbage",
                  lambda m: os.mkfifo(m.parent / "eval.json") if hasattr(os, "mkfifo")
                  else (m.parent / "eval.json").write_bytes(b"\xff"))]
    for i, (what, spoil) in enumerate(specials):
        root = work / f"history-special-{i:02d}"
        shutil.copytree(good, root / "good")
        shutil.copytree(good, root / "damaged")
        spoil(root / "damaged" / "metrics.jsonl")
        cases.append(Case("run history", f"runs: {what}", ["runs", str(root)], ok_codes=(0,),
                          keep=[root / "good" / "metrics.jsonl"], shows=("good", "damaged")))
        cases.append(Case("run history", f"report: {what}", ["report", str(root / "good"), str(root / "damaged"),
                                                             "--out", str(work / f"report-s{i:02d}.html")],
                          ok_codes=(0,)))
    evil = work / "history-names"
    shutil.copytree(good, evil / "=HYPERLINK(\"x\")\x1b[2J")
    cases.append(Case("run history", "a run named with a formula and an escape sequence",
                      ["runs", str(evil), "--csv", str(work / "evil.csv")], ok_codes=(0,),
                      after=lambda code: _neutralised(work / "evil.csv")))
    return cases


def _neutralised(csv_file: Path) -> str:
    import csv

    if not csv_file.is_file():
        return "no CSV written"
    with open(csv_file, newline="", encoding="utf-8") as f:
        names = [row["name"] for row in csv.DictReader(f)]
    return "" if names and all(n.startswith("'=") for n in names) else f"a formula cell was written raw: {names}"


def output_guard_cases(work: Path) -> list[Case]:
    """Outputs never overwrite a run's records; wrong suffixes and over-long names are one line before any work."""
    run = work / "history-good"
    ck = str(work / "good.safetensors")
    records = [run / "metrics.jsonl", run / "config.json", *(run / "checkpoints").iterdir()]
    long = "n" * 300
    argvs = [
        ["report", str(run), "--out", str(run / "metrics.jsonl")],
        ["report", str(run), "--out", str(run / "config.json")],
        ["report", str(run), "--out", str(run / "checkpoints" / "r.html")],
        ["report", str(run), "--out", str(run / "samples" / "r.html")],
        ["report", str(run), "--out", str(work / "report.txt")],
        ["report", str(run), "--out", str(work / f"{long}.html")],
        ["report", str(run), "--out", str(work / long / "r.html")],
        ["runs", str(run), "--csv", str(run / "metrics.jsonl")],
        ["runs", str(run), "--csv", str(run / "config.json")],
        ["runs", str(run), "--csv", str(run / "samples" / "x.csv")],
        ["runs", str(run), "--csv", str(work / "runs.txt")],
        ["runs", str(run), "--csv", str(work / f"{'é' * 200}.csv")],
        ["runs", str(run), "--csv", str(work)],
        ["runs", str(run), "--csv", str(work / "no" / "such" / "x.csv")],
        ["train", *TINY, "--out", str(work / long)],
        ["sample", ck, "--out", str(work / f"{long}.png")],
        ["experiment", "beta-sweep", "--out", str(work / long)],
        ["experiment", "beta-sweep", "--dataset", f"folder:{work / 'no-such-images'}", "--out",
         str(work / "exp")],
    ]
    return [Case("output", " ".join(a)[:90].replace(str(work), "WORK"), a, ok_codes=(2,), keep=records)
            for a in argvs]


def more_checkpoint_cases(work: Path) -> list[Case]:
    """Checkpoint metadata nested 100,000 deep (each entry), FIFOs and devices as checkpoints, --near CSVs."""
    good = work / "good.safetensors"
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    cases = []
    for key in ("config", "meta", "metrics", "train_state", "optim"):
        h = json.loads(json.dumps(header))
        h["__metadata__"][key] = "[" * 100_000 + "]" * 100_000
        p = write_safetensors(work / f"deep-{key}.safetensors", h, body)
        cases.append(Case("checkpoint", f"sample: {key} nested 100,000 deep",
                          ["sample", str(p), "--out", str(work / "o.png")], ok_codes=(2,), keep=[p]))
    if hasattr(os, "mkfifo"):
        os.mkfifo(work / "fifo.safetensors")
        cases.append(Case("checkpoint", "sample: a FIFO", ["sample", str(work / "fifo.safetensors"), "--out",
                                                          str(work / "o.png")], ok_codes=(2,)))
    (work / "zero.safetensors").symlink_to("/dev/zero")
    cases.append(Case("checkpoint", "sample: a link to /dev/zero", ["sample", str(work / "zero.safetensors"),
                                                                   "--out", str(work / "o.png")], ok_codes=(2,)))
    near_files = {
        "too few cells": "split,index,label\ntrain,0,1\ntrain\n", "too many cells": "split,index\ntrain,0,5,6\n",
        "a huge index": "split,index\ntrain,99999999999999999999999\n",
        "a label of -7": "split,index,label\ntrain,1,-7\n",
        "a label past the classes": "split,index,label\ntrain,1,10\n", "no header": "train,0\n",
        "a BOM and a bad index": "\ufeffsplit,index\ntrain,x\n", "semicolons": "split;index\ntrain;0\n",
        "not UTF-8": "split,index\ntrain,\udcff\n", "empty": ""}
    for i, (what, text) in enumerate(near_files.items()):
        p = work / f"near-{i:02d}.csv"
        p.write_bytes(text.encode("utf-8", errors="surrogateescape"))
        cases.append(Case("near csv", f"sample --near: {what}", ["sample", str(good), "--near", str(p), "--out",
                                                                 str(work / "near.png")], ok_codes=(2,), keep=[p]))
    if hasattr(os, "mkfifo"):
        os.mkfifo(work / "near-fifo.csv")
        cases.append(Case("near csv", "sample --near: a FIFO", ["sample", str(good), "--near",
                                                                str(work / "near-fifo.csv"), "--out",
                                                                str(work / "near.png")], ok_codes=(2,)))
    return cases


def run_case(case: Case) -> tuple[int | None, str, str]:
    """(exit code or None when an exception escaped, stdout, stderr + any traceback)."""
    if case.runner is not None:
        return case.runner()
    out, err = io.StringIO(), io.StringIO()
    timer = None
    if case.signal_after_s is not None:
        timer = threading.Timer(case.signal_after_s, os.kill, (os.getpid(), case.signum))
        timer.start()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(case.argv)
    except BaseException:  # noqa: BLE001 - the point: anything escaping is a failure of the case
        import traceback

        return None, out.getvalue(), err.getvalue() + traceback.format_exc()
    finally:
        if timer is not None:
            timer.cancel()
    return code, out.getvalue(), err.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every case, not only the failures")
    parser.add_argument("--kind", default=None, help="run only this kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vae-explorer-bad-inputs-") as tmp:
        work = Path(tmp)
        os.environ["VAE_EXPLORER_HOME"] = str(work / "home")
        cases = (checkpoint_cases(work) + config_cases(work) + argument_cases(work) + output_cases(work)
                 + folder_cases(work) + stop_cases(work) + run_folder_cases(work) + history_cases(work)
                 + output_guard_cases(work) + more_checkpoint_cases(work))
        if args.kind:
            cases = [c for c in cases if c.kind == args.kind]
        counts = {"tried": 0, "tracebacks": 0, "wrong exit codes": 0, "data lost": 0, "runs hidden": 0}
        by_kind: dict[str, int] = {}
        t0 = time.perf_counter()
        for case in cases:
            before = {p: digest(p) for p in case.keep}
            code, out, err = run_case(case)
            counts["tried"] += 1
            by_kind[case.kind] = by_kind.get(case.kind, 0) + 1
            problems = []
            if code is None or "Traceback" in err + out:
                counts["tracebacks"] += 1
                problems.append("traceback")
            elif code not in case.ok_codes:
                counts["wrong exit codes"] += 1
                problems.append(f"exit {code}, expected {case.ok_codes}")
            elif code == 2 and len([x for x in err.splitlines() if x.strip()]) != 1:
                counts["wrong exit codes"] += 1
                problems.append("exit 2 without exactly one line")
            hidden = [name for name in case.shows if name not in out]
            if hidden and code is not None:
                counts["runs hidden"] += 1
                problems.append(f"not listed: {', '.join(hidden)}")
            lost = [str(p) for p in case.keep if digest(p) != before[p]]
            if case.after is not None and code is not None:
                why = case.after(code)
                if why:
                    lost.append(why)
            if lost:
                counts["data lost"] += 1
                problems.append("lost: " + "; ".join(lost))
            if problems or args.list:
                last = (err.strip().splitlines() or [""])[-1][:150]
                print(f"{'FAIL' if problems else 'ok  '} [{case.kind}] {case.what}: exit {code} "
                      f"{', '.join(problems)} | {last}")
        print(f"\nkinds: {', '.join(f'{k} {v}' for k, v in by_kind.items())}")
        print(" / ".join(f"{k} {v}" for k, v in counts.items()) + f"  ({time.perf_counter() - t0:.0f} s)")
        return 1 if any(v for k, v in counts.items() if k != "tried") else 0


if __name__ == "__main__":
    sys.exit(main())
