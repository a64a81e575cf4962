"""A built-in experiment one run after another vs `--parallel N` (N runs at once, each its own process with an equal
share of the CPU threads): wall time, and whether the numbers are the same.

    python bench/bench_parallel_experiment.py [--experiment beta-sweep] [--dataset digits] [--scale quick]
                                              [--parallel 2]

Runs `vae-explorer experiment` twice through the CLI into fresh folders (the judge classifier trained once before,
as after a user's first experiment), then compares every run's eval.json numbers and best weights. Serial runs use
torch's default threads (all cores); parallel runs 1/N of them each. Prints one line per measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _warm_judge(dataset: str) -> None:
    from core.config import preset
    from core.data.datasets import load_dataset
    from core.evaluation.judge import get_classifier
    from core.experiments.spec import _base_preset

    data = load_dataset(preset(_base_preset(dataset)).data)
    get_classifier(data.meta, data)


def _numbers(run: Path) -> dict[str, float]:
    result = json.loads((run / "eval.json").read_text())
    return {k: float(v) for k, v in result.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    from core.training.checkpoint import load_checkpoint

    wa, wb = load_checkpoint(a).model_state, load_checkpoint(b).model_state
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="beta-sweep")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--scale", default="quick")
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--threads", type=int, default=0,
                        help="pin train.threads in every run, serial and parallel alike (0: torch's default serially, "
                             "an equal share in parallel); equal threads give bitwise-equal weights")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VAE_EXPLORER_HOME"] = str(Path(tmp) / "home")
        from core.cli.main import main as cli
        from core.experiments.spec import experiment

        _warm_judge(args.dataset)
        if args.threads:
            import dataclasses

            from core.experiments import spec as spec_module

            pinned = experiment(args.experiment, args.dataset, args.scale)
            pinned = dataclasses.replace(pinned, runs=tuple(
                spec_module.RunSpec(r.name, {**r.delta, "train.threads": args.threads}) for r in pinned.runs))
            spec_module.EXPERIMENTS[args.experiment] = lambda dataset, scale: pinned
        common = ["experiment", args.experiment, "--dataset", args.dataset, "--scale", args.scale, "--quiet"]
        times = {}
        for label, extra in (("serial", []), (f"parallel-{args.parallel}", ["--parallel", str(args.parallel)])):
            out = Path(tmp) / label
            t0 = time.perf_counter()
            code = cli([*common, *extra, "--out", str(out)])
            times[label] = time.perf_counter() - t0
            if code != 0:
                print(f"{label}: exit {code}")
                return code
            print(f"{label}: {times[label]:.1f} s")
        serial, par = (Path(tmp) / label for label in times)
        print(f"speed-up: x{times['serial'] / times[f'parallel-{args.parallel}']:.2f} on {os.cpu_count()} CPUs")
        spec = experiment(args.experiment, args.dataset, args.scale)
        print(f"threads: {args.threads or 'default'}")
        for run in spec.runs:
            a, b = _numbers(serial / run.name), _numbers(par / run.name)
            diffs = {k: abs(a[k] - b[k]) / max(abs(a[k]), 1e-12) for k in a.keys() & b.keys()
                     if math.isfinite(a[k]) and math.isfinite(b[k])}
            worst = max(diffs, key=diffs.get) if diffs else None
            same = _same_weights(serial / run.name / "checkpoints" / "best.safetensors",
                                 par / run.name / "checkpoints" / "best.safetensors")
            print(f"{run.name}: weights {'identical' if same else 'DIFFER'}; eval numbers "
                  + ("identical" if not any(diffs.values()) else f"differ, at most {diffs[worst]:.1e} relative "
                                                                   f"({worst}: {a[worst]:.7g} vs {b[worst]:.7g})")
                  + f"; ELBO {a.get('elbo', math.nan):.4f}, KL {a.get('kl', math.nan):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
