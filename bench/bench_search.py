"""Does `vae-explorer search` find better settings than the dataset's preset within its budget?

    python bench/bench_search.py --out DIR [--dataset digits] [--budget 10m]     # the search (continue: run again)
    python bench/bench_search.py --out DIR --compare                             # best trial vs the preset

The search runs through the CLI into DIR (a second launch with the same DIR continues the study, so a 10-minute
search can run as two 5-minute launches). --compare trains the dataset's preset itself (same seed) and prints its
validation ELBO beside the best trial's, then both on the test split (ELBO, IWAE NLL, Fréchet score, accuracy).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _compare(out: Path, dataset: str) -> int:
    from core.config import preset
    from core.experiments.runner import evaluate_run
    from core.experiments.search import SearchSettings, best_trial_numbers, open_study
    from core.experiments.spec import _base_preset
    from core.training.trainer import Trainer

    study = open_study(SearchSettings(dataset=dataset), out)
    spent = sum(t.duration.total_seconds() for t in study.trials if t.duration is not None)
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(f"trials: {len(study.trials)} ({states}), {spent:.0f} s of trial time")
    (number,) = best_trial_numbers(study)
    best = next(t for t in study.trials if t.number == number)
    print(f"best: trial {number}, validation ELBO {best.value:.3f}, {best.params}")
    run = out / "preset"
    if not (run / "metrics.jsonl").is_file():
        t0 = time.perf_counter()
        for _ in Trainer(preset(_base_preset(dataset)), run_dir=run).run():
            pass
        print(f"preset trained in {time.perf_counter() - t0:.1f} s")
    ends = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"type": "end"' in line]
    end_val = ends[-1]["best_val"]
    print(f"preset {_base_preset(dataset)}: validation ELBO {end_val:.3f}; the best trial is better by "
          f"{best.value - end_val:+.3f}")
    for name, folder in (("preset", run), (f"trial {number}", out / best.user_attrs["run"])):
        r = evaluate_run(folder, scale="quick")
        print(f"test split, {name}: ELBO {r['elbo']:.3f}, IWAE NLL {r.get('iwae_nll', float('nan')):.3f}, Fréchet "
              f"{r['fid_like']:.2f}, conditional accuracy {r['conditional_accuracy']:.3f}, SSIM {r.get('ssim', 0):.3f}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("VAE_EXPLORER_HOME", str(Path(args.out) / "home"))
    out = Path(args.out) / "search"
    if args.compare:
        return _compare(out, args.dataset)
    from core.cli.main import main as cli

    t0 = time.perf_counter()
    code = cli(["search", "--dataset", args.dataset, "--budget", args.budget, "--out", str(out), "--quiet"])
    print(f"search launch: {time.perf_counter() - t0:.0f} s wall (budget {args.budget}), exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
