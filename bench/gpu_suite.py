"""The CUDA training core, measured: one command that prints the whole table (issue 26).

    python bench/gpu_suite.py --device cuda                 # ~7 minutes on one GPU (--budget-s, default 420)
    python bench/gpu_suite.py --device cpu --tiny           # seconds: what the test suite runs so this cannot rot
    make bench-gpu                                          # the first line, writing to build/gpu-suite

Parts (bench/gpu_suite_parts.py): 1. the cifar10 and mnist presets through the Trainer vs a plain fp32 loop;
2. the Trainer's options one at a time and combined (bf16, channels_last, fused Adam, cudnn.benchmark,
torch.compile, batch 512); 3. MFU of every throughput row against the device's dense bf16 peak, from a FLOP count of
one step (FlopCounterMode); 4. the DDPM: training and 1,000 samples with 20 DPM-Solver++ steps; 5. encoding 60,000
images, the exact kNN of 60,000 latents, cuML UMAP when installed; 6. a 1-process torchrun launch of the mnist preset
(nccl on CUDA); and the profiler's top operators. Data are synthetic uint8 tensors of CIFAR-10's and MNIST's shapes.

Each part runs in its own process with its share of the budget (plus what earlier parts left unused); a row that no
longer fits is skipped and said so, and a part that runs over is killed with its unfinished rows reported as skipped,
so one call never overruns. Writes gpu_suite.json and gpu_suite.txt (the printed table) to --out, else $OUT, else
the current folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIN_PART_S = 20.0   # a part is not started with less than this left (a process start and a warm-up cost ~10 s)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (default: cuda)")
    ap.add_argument("--tiny", action="store_true", help="a few steps on a few hundred images (a smoke test)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="seconds for the whole suite (default: 420)")
    ap.add_argument("--parts", default=None, help="comma-separated subset of the parts (default: all)")
    ap.add_argument("--out", default=None, help="folder for gpu_suite.json and gpu_suite.txt (default: $OUT or .)")
    ap.add_argument("--timed-steps", type=int, default=150, help="timed steps of each throughput row (default: 150)")
    ap.add_argument("--part", help=argparse.SUPPRESS)            # internal: run one part in this process
    ap.add_argument("--rows-file", help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.part:
        return _run_part(args)
    import torch

    from bench.gpu_suite_parts import PARTS
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_suite: --device cuda was asked for but CUDA is not available here; use --device cpu",
              file=sys.stderr)
        return 2
    parts = list(PARTS) if not args.parts else [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        print(f"gpu_suite: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}", file=sys.stderr)
        return 2
    out = Path(args.out or os.environ.get("OUT") or ".")
    out.mkdir(parents=True, exist_ok=True)
    result = _run_parts(args, parts, out)
    text = render(result)
    (out / "gpu_suite.json").write_text(json.dumps(result, indent=1), encoding="utf-8")
    (out / "gpu_suite.txt").write_text(text, encoding="utf-8")
    print(text)
    return 0


def _run_parts(args: argparse.Namespace, parts: list[str], out: Path) -> dict[str, Any]:
    import torch

    from bench.gpu_suite_parts import PARTS
    t_start = time.monotonic()
    end = t_start + args.budget_s
    rows_file = out / "gpu_suite_rows.jsonl"
    rows_file.unlink(missing_ok=True)
    total_share = sum(PARTS[p][1] for p in parts)
    shares = {p: PARTS[p][1] / total_share for p in parts}   # a subset of the parts shares the whole budget
    spent_share = 0.0
    notes = []
    for p in parts:
        left = end - time.monotonic()
        # this part's share of the whole budget, plus whatever earlier parts left unused
        allowed = min(left, args.budget_s * (spent_share + shares[p]) - (time.monotonic() - t_start))
        spent_share += shares[p]
        if allowed < (1.0 if args.tiny else MIN_PART_S):
            notes.append(f"part {p} skipped: {max(allowed, 0):.0f} s of the budget left for it")
            _append(rows_file, {"part": p, "row": "(whole part)", "skipped": "no budget left"})
            continue
        notes.extend(_spawn_part(args, p, allowed, rows_file))
    rows = [json.loads(line) for line in rows_file.read_text(encoding="utf-8").splitlines()] \
        if rows_file.exists() else []
    rows_file.unlink(missing_ok=True)
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({platform.processor() or 'cpu'})"
    from bench.gpu_suite_parts import peak_tflops_for
    return {"device": name, "torch": torch.__version__, "python": platform.python_version(), "tiny": args.tiny,
            "budget_s": args.budget_s, "wall_s": round(time.monotonic() - t_start, 1),
            "bf16_peak_tflops": peak_tflops_for(dev), "rows": rows, "notes": notes}


def _spawn_part(args: argparse.Namespace, part: str, allowed: float, rows_file: Path) -> list[str]:
    deadline_wall = time.time() + allowed
    cmd = [sys.executable, str(Path(__file__).resolve()), "--part", part, "--device", args.device,
           "--rows-file", str(rows_file), "--deadline", str(deadline_wall),
           "--timed-steps", str(args.timed_steps)] + (["--tiny"] if args.tiny else [])
    before = _count_rows(rows_file)
    t0 = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=allowed + 5)
    except subprocess.TimeoutExpired:
        _append(rows_file, {"part": part, "row": "(rest of the part)", "skipped": f"ran past its {allowed:.0f} s"})
        return [f"part {part}: stopped at its {allowed:.0f} s share; {_count_rows(rows_file) - before - 1} rows done"]
    took = time.monotonic() - t0
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        _append(rows_file, {"part": part, "row": "(part failed)", "error": "\n".join(tail)})
        return [f"part {part} failed (exit {proc.returncode}) after {took:.0f} s: {tail[-1] if tail else ''}"]
    return [f"part {part}: {took:.0f} s of {allowed:.0f} s"]


def _run_part(args: argparse.Namespace) -> int:
    import torch

    from bench.gpu_suite_parts import PARTS, Settings, peak_tflops_for
    dev = torch.device(args.device)
    deadline = time.monotonic() + (args.deadline - time.time())
    s = Settings(device=dev, tiny=args.tiny, deadline=deadline, rows_file=Path(args.rows_file),
                 peak_tflops=peak_tflops_for(dev), timed_steps=args.timed_steps)
    PARTS[args.part][0](s)
    return 0


def _append(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def _count_rows(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def _fmt(v: Any, spec: str) -> str:
    return "" if v is None else format(v, spec)


def render(result: dict[str, Any]) -> str:
    """The printed table: throughput rows (images/s, s per 50,000-image epoch, peak memory, MFU), timings, skips."""
    tiny = " · TINY (smoke test, numbers mean nothing)" if result["tiny"] else ""
    lines = [f"gpu_suite on {result['device']} · torch {result['torch']} · budget {result['budget_s']:.0f} s, "
             f"took {result['wall_s']:.0f} s{tiny}",
             f"MFU against a dense bf16 peak of {result['bf16_peak_tflops'] or 'n/a'} TFLOP/s", ""]
    head = f"{'part':<9} {'row':<62} {'img/s':>10} {'s/epoch':>8} {'peak MiB':>9} {'MFU':>6}  note"
    lines += [head, "-" * len(head)]
    for r in result["rows"]:
        if r.get("table"):
            continue
        note = r.get("skipped") and f"SKIPPED: {r['skipped']}" or r.get("error") or ""
        for key in ("vs_plain", "vs_fp32"):
            if r.get(key) is not None:
                note = f"{key.replace('_', ' ')} x{r[key]:.2f}  " + note
        if r.get("seconds") is not None:
            note = f"{r['seconds']:.2f} s  " + note
        if "exit" in r:
            note += f"exit {r['exit']}, {r.get('backend')}, saved {', '.join(r.get('saved') or []) or 'nothing'}"
            note += f"  {r['stderr_tail']}" if r.get("stderr_tail") else ""
        if r.get("self_first") is False:
            note += " (a point is not its own first neighbour!)"
        mfu = r.get("mfu")
        lines.append(f"{r['part']:<9} {r['row'][:62]:<62} {_fmt(r.get('images_per_s'), ',.0f'):>10} "
                     f"{_fmt(r.get('s_per_epoch'), '.2f'):>8} {_fmt(r.get('peak_mib'), ',.0f'):>9} "
                     f"{'' if mfu is None else f'{100 * mfu:.1f}%':>6}  {note}".rstrip())
    for r in result["rows"]:
        if r.get("table"):
            lines += ["", r["row"], r["table"]]
    lines += [""] + result["notes"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
