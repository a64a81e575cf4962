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
import signal
import struct
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


def run_case(case: Case) -> tuple[int | None, str, str]:
    """(exit code or None when an exception escaped, stdout, stderr + any traceback)."""
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
                 + folder_cases(work) + stop_cases(work))
        if args.kind:
            cases = [c for c in cases if c.kind == args.kind]
        counts = {"tried": 0, "tracebacks": 0, "wrong exit codes": 0, "data lost": 0}
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
        return 1 if counts["tracebacks"] or counts["wrong exit codes"] or counts["data lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
