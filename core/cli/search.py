"""`vae-explorer search --dataset digits --out DIR --budget 10m [--objective elbo|iwae|frechet|accuracy[,NAME]]`: an
Optuna study over the VAE's settings for a dataset (core.experiments.search); trials are run folders DIR/trial-NNNN,
the study DIR/study.db (or --storage), the report DIR/search-report.html.

Ctrl-C or SIGTERM stops the trial after its step and exits 130 / 143; the same command continues the study.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from core.cli.common import EXIT_INTERRUPTED, PROG, StopOnSignals
from core.errors import UserError
from core.files import check_writable


def search_command(args: argparse.Namespace) -> int:
    from core.data.datasets import LOADERS, known_datasets
    from core.experiments.durations import parse_duration
    from core.experiments.search import SearchSettings, base_config, import_optuna, parse_objectives

    dataset = args.dataset.strip()
    if not dataset.lower().startswith("folder:") and dataset.lower().replace("_", "-") not in LOADERS:
        raise UserError(f"unknown dataset {dataset!r}; known datasets: {', '.join(known_datasets())}")
    settings = SearchSettings(dataset=dataset, objectives=parse_objectives(args.objective),
                              budget_s=parse_duration(args.budget, "--budget"), trials=args.trials,
                              epochs=args.epochs, storage=args.storage, seed=args.seed, preset=args.preset)
    base_config(settings)      # the dataset's settings checked before any work
    import_optuna()            # a missing extra is one line, before anything is created
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the search's trials")
    check_writable(out, f"the search folder {out}")
    received: list[int] = []
    with StopOnSignals(received):
        end, study = _drive(settings, out, received, quiet=args.quiet)
    from core.experiments.search_report import write_search_report

    try:
        report = write_search_report(study, out)
    except OSError as e:
        raise UserError(f"cannot write the report in {out} ({e.strerror or type(e).__name__})") from None
    _summary(study, end, settings.objectives)
    print(f"report: {report}")
    if end is not None and end.status == "stopped":
        print(f"{PROG}: {end.message}: {PROG} search --dataset {dataset} --out {out} --objective "
              f"{','.join(settings.objectives)}" + (f" --storage {args.storage}" if args.storage else "")
              + (f" --preset {args.preset}" if args.preset else ""), file=sys.stderr)
        return 128 + received[-1] if received else EXIT_INTERRUPTED
    return 0


def _drive(settings: Any, out: Path, received: list[int], *, quiet: bool) -> tuple[Any, Any]:
    """Run the search with a bar over the budget and one line per trial; (its SearchEnded, the study)."""
    from tqdm import tqdm

    from core.experiments.search import SearchEnded, open_study, run_search

    bar = tqdm(total=1000, unit="‰", file=sys.stderr, leave=False, disable=quiet, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {elapsed} of the budget")
    end = None
    try:
        for ev in run_search(settings, out, should_stop=lambda: bool(received)):
            if isinstance(ev, SearchEnded):
                end = ev
                break
            bar.n = int(ev.fraction * 1000)
            bar.set_description(f"trial {ev.trial}", refresh=False)
            bar.refresh()
            if ev.message and ev.stage != "evaluating" and not quiet:
                bar.write(ev.message, file=sys.stdout)
    finally:
        bar.close()
    return end, open_study(settings, out)


def _summary(study: Any, end: Any, objectives: tuple[str, ...]) -> None:
    from core.experiments.search import best_trial_numbers

    best = best_trial_numbers(study)
    if end is not None:
        print(end.message)
    if not best:
        print("no trial has completed yet")
        return
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for n in best[:10]:
        t = trials[n]
        values = ", ".join(f"{o} {v:.4g}" for o, v in zip(objectives, t.values, strict=True))
        params = ", ".join(f"{k.split('.')[1]}={v:.3g}" if isinstance(v, float) else f"{k.split('.')[1]}={v}"
                           for k, v in t.params.items())
        print(f"{'best' if len(best) == 1 else 'on the Pareto front'}: trial {n} ({t.user_attrs.get('run')}): "
              f"{values}; {params}")
