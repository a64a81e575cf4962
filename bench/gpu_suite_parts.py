"""The measurements of `bench/gpu_suite.py`, one function per part; each row is one dict appended to the rows file
as soon as it is measured (a part killed at its deadline keeps the rows it finished).

Throughput is taken on synthetic uint8 data of the real datasets' shapes, held on the device (the GPU machine
reaches nothing outside): the numbers are the training core's speed, not a model's quality.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.config import Config, DiffusionConfig, TrainConfig, preset
from core.data.datasets import Dataset, DatasetMeta, Split
from core.images import as_float
from core.models import build_model
from core.training.events import StepMetrics
from core.training.trainer import Trainer

EPOCH_IMAGES = 50_000   # "seconds per epoch" is for a 50,000-image epoch (CIFAR-10's training set)
SHAPES = {"cifar10": (50_000, 3, 32), "mnist": (60_000, 1, 28)}
# Dense bf16 peak (vendor datasheets, SXM parts), the denominator of MFU as in nanoGPT's estimate_mfu.
BF16_PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0, "L40S": 362.1, "RTX 4090": 165.2}


@dataclasses.dataclass
class Settings:
    device: torch.device
    tiny: bool
    deadline: float          # time.monotonic() by which the part must end
    rows_file: Path
    peak_tflops: float | None
    timed_steps: int = 150

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def steps(self) -> tuple[int, int]:
        """(warm-up steps, timed steps) of a throughput row."""
        return (1, 2) if self.tiny else (30, self.timed_steps)


def emit(s: Settings, row: dict[str, Any]) -> None:
    with open(s.rows_file, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def skip(s: Settings, part: str, name: str, why: str) -> None:
    emit(s, {"part": part, "row": name, "skipped": why})


def fits(s: Settings, part: str, name: str, cost_s: float) -> bool:
    """Whether a row estimated to take `cost_s` still fits in the part's time; reports it skipped if not."""
    if s.tiny or s.left() >= cost_s:
        return True
    skip(s, part, name, f"needs ~{cost_s:.0f} s, {max(s.left(), 0):.0f} s of this part's budget left")
    return False


# ----------------------------------------------------------------------------------------------- data and models
def synthetic(name: str, s: Settings) -> Dataset:
    """Random uint8 images of dataset `name`'s shape and size, on the device (tiny: a few hundred)."""
    n, c, size = SHAPES[name]
    if s.tiny:
        n = 256
    g = torch.Generator(device="cpu").manual_seed(0)
    meta = DatasetMeta(name, tuple(str(i) for i in range(10)), c, size)

    def split(k: int) -> Split:
        images = torch.randint(0, 256, (k, c, size, size), dtype=torch.uint8, generator=g)
        return Split(images.to(s.device), torch.randint(0, 10, (k,), generator=g).to(s.device))

    return Dataset(meta, split(n), split(64 if s.tiny else 1024), split(64))


def bench_config(name: str, s: Settings, **train: Any) -> Config:
    """The preset `name` set up for a throughput row: on the suite's device, no previews, a step budget."""
    cfg = preset(name)
    warm, timed = s.steps()
    batch = train.pop("batch_size", 32 if s.tiny else cfg.train.batch_size)
    tc = dataclasses.replace(cfg.train, device=str(s.device), epochs=100, max_steps=warm + timed, log_every=10 if not
                             s.tiny else 1, preview_every=0, early_stopping=0, batch_size=batch, **train)
    model = dataclasses.replace(cfg.model, width=8) if s.tiny else cfg.model   # tiny: a smoke test, seconds
    return dataclasses.replace(cfg, model=model, train=tc)


def flops_per_image(cfg: Config, ds: Dataset, s: Settings) -> float:
    """FLOPs of one training step (forward + backward) per image, counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    model = build_model(cfg.model, ds.meta).to(s.device)
    n = min(cfg.train.batch_size, len(ds.train))
    x, y = as_float(ds.train.images[:n]), ds.train.labels[:n]
    with FlopCounterMode(display=False) as counter:
        model.loss(x, y, step=0)["loss"].backward()
    return counter.get_total_flops() / n


def _reset_memory(s: Settings) -> None:
    if s.cuda:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(s: Settings) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if s.cuda else None


def row(s: Settings, part: str, name: str, images_per_s: float, flops: float | None, **extra: Any) -> dict:
    mfu = (images_per_s * flops / (s.peak_tflops * 1e12)) if flops and s.peak_tflops else None
    r = {"part": part, "row": name, "images_per_s": round(images_per_s, 1),
         "gflop_per_image": None if not flops else round(flops / 1e9, 4),
         "s_per_epoch": round(EPOCH_IMAGES / images_per_s, 3) if images_per_s > 0 else None,
         "peak_mib": None if (m := _peak_mib(s)) is None else round(m, 1),
         "mfu": None if mfu is None else round(mfu, 4), **extra}
    emit(s, r)
    return r


# ----------------------------------------------------------------------------------------------- throughput rows
def plain_loop(cfg: Config, ds: Dataset, s: Settings) -> float:
    """The floor: the same model and batch in a plain fp32 loop (Adam, no checks, no metrics). Images/s."""
    torch.manual_seed(0)
    model = build_model(cfg.model, ds.meta).to(s.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.lr)
    warm, timed = s.steps()
    b = cfg.train.batch_size
    g = torch.Generator(device=s.device).manual_seed(0)
    t0 = 0.0
    for i in range(warm + timed):
        if i == warm:
            _sync(s)
            t0 = time.perf_counter()
        idx = torch.randint(0, len(ds.train), (b,), device=s.device, generator=g)
        loss = model.loss(as_float(ds.train.images[idx]), ds.train.labels[idx], step=i)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    _sync(s)
    return timed * b / (time.perf_counter() - t0)


def trainer_rate(cfg: Config, ds: Dataset) -> float:
    """The Trainer's own images/s (StepMetrics, measured between synced steps), median of the windows after the
    warm-up steps (which include torch.compile's compilation)."""
    warm = cfg.train.max_steps // 6
    rates = [ev.images_per_s for ev in Trainer(cfg, dataset=ds).run()
             if isinstance(ev, StepMetrics) and ev.step > warm]
    if not rates:
        raise RuntimeError("the Trainer reported no step metrics (did the run fail?)")
    return statistics.median(rates)


def _sync(s: Settings) -> None:
    if s.cuda:
        torch.cuda.synchronize()


@contextlib.contextmanager
def cudnn_benchmark(on: bool) -> Iterator[None]:
    old = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = old


# ----------------------------------------------------------------------------------------------- the parts
def part_presets(s: Settings) -> None:
    """1. The cifar10 and mnist presets: the Trainer (its CUDA defaults) against the plain fp32 loop."""
    for name in ("cifar10", "mnist"):
        ds = synthetic(name, s)
        cfg = bench_config(name, s)
        flops = flops_per_image(cfg, ds, s)
        plain = None
        if fits(s, "presets", f"{name}: plain fp32 loop", 15):
            _reset_memory(s)
            plain = row(s, "presets", f"{name}: plain fp32 loop", plain_loop(cfg, ds, s), flops)
        eager = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, compile="off"))
        for label, compiled in (("Trainer (defaults)", cfg), ("Trainer (defaults, compile off)", eager)):
            if fits(s, "presets", f"{name}: {label}", 90 if compiled.train.compile != "off" else 30):
                _reset_memory(s)
                r = trainer_rate(compiled, ds)
                row(s, "presets", f"{name}: {label}", r, flops,
                    vs_plain=round(r / plain["images_per_s"], 3) if plain else None, options=_options(compiled.train))
        del ds


def _options(tc: TrainConfig) -> str:
    return (f"bf16 {'on' if tc.amp else 'off'}, channels_last {'on' if tc.channels_last else 'off'}, fused Adam "
            f"{'on' if tc.fused_adam else 'off'}, compile {tc.compile}, batch {tc.batch_size}")


FP32 = {"amp": False, "channels_last": False, "fused_adam": False, "compile": "off"}
FAST = {"amp": False, "channels_last": True, "fused_adam": True}
# The Trainer's options one at a time (from fp32 with every option off), then combined; estimated seconds each.
# Most telling first: a part that runs out of time skips the last rows.
OPTION_ROWS: list[tuple[str, dict[str, Any], float]] = [
    ("fp32, every option off", FP32, 20),
    ("+ channels_last", {**FP32, "channels_last": True}, 20),
    ("+ bf16 autocast", {**FP32, "amp": True}, 20),
    ("+ fused Adam", {**FP32, "fused_adam": True}, 20),
    ("+ torch.compile (reduce-overhead: CUDA graphs)", {**FP32, "compile": "reduce-overhead"}, 90),
    ("+ torch.compile (default)", {**FP32, "compile": "default"}, 90),
    ("channels_last + fused + CUDA graphs (the CUDA default)", {**FAST, "compile": "reduce-overhead"}, 90),
    ("bf16 + channels_last + fused + CUDA graphs", {**FAST, "amp": True, "compile": "reduce-overhead"}, 90),
    ("channels_last + fused + CUDA graphs, batch 512 (lr x2)", {**FAST, "compile": "reduce-overhead",
                                                                "batch_size": 512, "lr_scale": 2.0}, 90),
    ("bf16 + channels_last + fused, batch 512 (lr x2)", {**FAST, "amp": True, "compile": "off", "batch_size": 512,
                                                         "lr_scale": 2.0}, 20),
    ("+ cudnn.benchmark", {**FP32, "cudnn_benchmark": True}, 20),
    ("fp32, every option off, no EMA", {**FP32, "ema_decay": 0.0}, 20),
    ("bf16 + channels_last + fused (no compile)", {**FAST, "amp": True, "compile": "off"}, 20),
    ("bf16 + channels_last + fused + compile max-autotune-no-cudagraphs",
     {**FAST, "amp": True, "compile": "max-autotune-no-cudagraphs"}, 200),
]


def part_options(s: Settings) -> None:
    """2. The Trainer's options on the cifar10 preset, one at a time and combined (batch 512: lr scaled by sqrt(4),
    Adam's usual rule)."""
    ds = synthetic("cifar10", s)
    flops = flops_per_image(bench_config("cifar10", s), ds, s)
    base = None
    for name, opts, cost in OPTION_ROWS:
        if not fits(s, "options", name, cost):
            continue
        opts = dict(opts)
        bench_cudnn = opts.pop("cudnn_benchmark", False)
        lr_scale = opts.pop("lr_scale", 1.0)
        if s.tiny and "batch_size" in opts:
            opts["batch_size"] = 64
        cfg = bench_config("cifar10", s, **opts)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, lr=cfg.train.lr * lr_scale))
        _reset_memory(s)
        torch._dynamo.reset()   # each row compiles afresh: no row reuses another's graphs
        try:
            with cudnn_benchmark(bench_cudnn):
                r = trainer_rate(cfg, ds)
        except Exception as e:  # noqa: BLE001 - one failing option is a result (said in its row), not the part's end
            emit(s, {"part": "options", "row": name, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            continue
        base = base or r
        row(s, "options", name, r, flops, vs_fp32=round(r / base, 3), options=_options(cfg.train))


def part_diffusion(s: Settings) -> None:
    """4. The DDPM (CIFAR-sized, the default U-Net): training images/s through the Trainer, and 1,000 samples with
    20 DPM-Solver++ steps (classifier-free guidance: two network passes a step)."""
    ds = synthetic("cifar10", s)
    cfg = Config(preset("cifar10").data, DiffusionConfig(base_channels=8 if s.tiny else 32),
                 bench_config("cifar10", s).train)
    flops = flops_per_image(cfg, ds, s)
    if fits(s, "diffusion", "DDPM training (Trainer, defaults)", 60):
        _reset_memory(s)
        row(s, "diffusion", "DDPM training (Trainer, defaults)", trainer_rate(cfg, ds), flops)
    model = build_model(cfg.model, ds.meta).to(s.device).eval()
    n = 4 if s.tiny else 1000
    labels = torch.arange(n) % 10
    for name, amp in (("1,000 samples, 20 DPM-Solver++ steps, fp32", False),
                      ("1,000 samples, 20 DPM-Solver++ steps, bf16 autocast", True)):
        if not fits(s, "diffusion", name, 30):
            continue
        ctx = torch.autocast("cuda", dtype=torch.bfloat16) if amp and s.cuda else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            model.sample(labels[:8], steps=2, sampler="dpm++")     # warm-up (kernels, scheduler)
            _reset_memory(s)
            t0 = time.perf_counter()
            out = model.sample(labels, steps=20, sampler="dpm++", generator=torch.Generator().manual_seed(0))
            _sync(s)
            dt = time.perf_counter() - t0
        assert out is not None and out.shape[0] == n and torch.isfinite(out).all()
        emit(s, {"part": "diffusion", "row": name, "seconds": round(dt, 3), "images": n,
                 "images_per_s": round(n / dt, 1), "peak_mib": _peak_mib(s)})


def part_latent(s: Settings) -> None:
    """5. Encoding 60,000 MNIST-shaped images with the mnist preset's model; the latent map's exact kNN of their
    60,000 latents on the device; cuML UMAP when it is installed."""
    from core.latent.encoding import encode_split
    from core.latent.projection import exact_knn

    ds = synthetic("mnist", s)
    model = build_model(bench_config("mnist", s).model, ds.meta).to(s.device)
    encode_split(model, Split(ds.train.images[:512], ds.train.labels[:512]))   # warm-up
    _reset_memory(s)
    t0 = time.perf_counter()
    lat = encode_split(model, ds.train, batch_size=2048)
    dt = time.perf_counter() - t0
    emit(s, {"part": "latent", "row": f"encode {len(ds.train):,} images (mnist preset, batch 2048)",
             "seconds": round(dt, 3), "images_per_s": round(len(ds.train) / dt, 1), "peak_mib": _peak_mib(s)})
    mu = lat.mu
    exact_knn(mu[:1000], 15, device=s.device)   # warm-up
    t0 = time.perf_counter()
    idx, _ = exact_knn(mu, 15, device=s.device)
    dt = time.perf_counter() - t0
    ok = bool((idx[:, 0] == np.arange(len(mu))).all())
    emit(s, {"part": "latent", "row": f"exact kNN (k=15) of {len(mu):,} latents of {mu.shape[1]} dims",
             "seconds": round(dt, 3), "self_first": ok})
    _cuml_umap(s, mu)


def _cuml_umap(s: Settings, mu: np.ndarray) -> None:
    try:
        from cuml.manifold import UMAP
    except Exception as e:  # noqa: BLE001 - any failure to import it means "not available here"
        skip(s, "latent", "cuML UMAP", f"cuML not importable ({type(e).__name__})")
        return
    t0 = time.perf_counter()
    UMAP(n_neighbors=15, min_dist=0.1).fit_transform(mu)
    emit(s, {"part": "latent", "row": f"cuML UMAP of {len(mu):,} latents", "seconds": round(time.perf_counter() - t0,
                                                                                            3)})


def write_mnist_files(root: Path, n_train: int, n_test: int) -> None:
    """Synthetic MNIST in torchvision's IDX layout (root/MNIST/raw), so the CLI loads it as it loads the real one."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(
            np.array([0x803, n, 28, 28], ">i4").tobytes() + images.tobytes())
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(np.array([0x801, n], ">i4").tobytes() + labels.tobytes())


def part_torchrun(s: Settings) -> None:
    """6. A 1-process torchrun launch of the mnist preset for one epoch (nccl on CUDA, gloo on the CPU): it starts,
    trains, and saves its checkpoints."""
    with tempfile.TemporaryDirectory(prefix="gpu-suite-") as tmp:
        root, out = Path(tmp) / "data", Path(tmp) / "run"
        write_mnist_files(root, 200 if s.tiny else 60_000, 50 if s.tiny else 10_000)
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1", "-m",
               "core.cli", "train", "--preset", "mnist", "--epochs", "1", "--out", str(out), "--quiet",
               "--set", f"data.data_root={root}", "--set", "data.download=false",
               "--set", f"train.device={s.device.type}"]
        if s.tiny:
            cmd += ["--set", "model.width=8"]
        root_path = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root_path, os.environ.get("PYTHONPATH")) if p),
               "TMPDIR": tmp}   # torchrun's own torchelastic_* folders go with the rest
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=max(s.left(), 5))
        dt = time.perf_counter() - t0
        saved = sorted(p.name for p in (out / "checkpoints").glob("*.safetensors")) if out.exists() else []
        rates = _logged_rates(out / "metrics.jsonl")
        emit(s, {"part": "torchrun", "row": "torchrun, 1 process, mnist preset, 1 epoch", "seconds": round(dt, 2),
                 "exit": proc.returncode, "saved": saved, "backend": "nccl" if s.cuda else "gloo",
                 "images_per_s": round(statistics.median(rates), 1) if rates else None,
                 "stderr_tail": _error_lines(proc.stdout + proc.stderr) if proc.returncode else ""})


def _error_lines(text: str) -> str:
    """What a failed child said about why: its error lines (torchrun's own summary at the end names none)."""
    lines = [ln for ln in text.splitlines() if "Error" in ln or "error:" in ln or "vae-explorer" in ln]
    return "\n".join(lines[:8])[-1500:]


def _logged_rates(path: Path) -> list[float]:
    rates = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError):
                rec = json.loads(line)
                if isinstance(rec, dict) and isinstance(rec.get("images_per_s"), (int, float)):
                    rates.append(float(rec["images_per_s"]))
    return rates[1:] or rates


def part_profile(s: Settings) -> None:
    """Where the time goes: torch.profiler's top operators for the Trainer's defaults on each preset."""
    from torch.profiler import ProfilerActivity, profile

    for name in ("cifar10", "mnist"):
        if not fits(s, "profile", f"{name}: profile", 30):
            continue
        ds = synthetic(name, s)
        cfg = bench_config(name, s)
        cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, max_steps=4 if s.tiny else 40))
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if s.cuda else [])
        with profile(activities=acts) as prof:
            for _ in Trainer(cfg, dataset=ds).run():
                pass
        key = "cuda_time_total" if s.cuda else "cpu_time_total"
        table = prof.key_averages().table(sort_by=key, row_limit=12, max_name_column_width=48)
        emit(s, {"part": "profile", "row": f"{name}: top operators by {key}", "table": table})


PARTS: dict[str, tuple[Callable[[Settings], None], float]] = {
    # name: (function, share of the budget)
    "presets": (part_presets, 0.30),
    "options": (part_options, 0.36),
    "diffusion": (part_diffusion, 0.10),
    "latent": (part_latent, 0.06),
    "torchrun": (part_torchrun, 0.10),
    "profile": (part_profile, 0.08),
}


def peak_tflops_for(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)
