"""`vae-explorer experiment NAME --dataset digits --out DIR [--scale quick|full]`: train and evaluate every run of a
built-in experiment into DIR/<run> and write DIR/report.html.

Ctrl-C or SIGTERM stops the current run after its step (its checkpoint is saved) and exits 130 / 143; the same
command again continues where it stopped (finished runs are not trained again).

`--parallel N` trains N runs at once in their own processes (one GPU or an equal share of the CPU threads each);
`--launcher ray` / `--launcher slurm` hand each run to Ray or Slurm (core.experiments.launchers). Their results are
those of the serial runs with the same seeds.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any

from core.cli.common import EXIT_FAILED, EXIT_INTERRUPTED, PROG, StopOnSignals
from core.errors import UserError
from core.files import check_writable, printable
from core.latent.samplers import parse_sources


def experiment_command(args: argparse.Namespace) -> int:
    from core.data.datasets import LOADERS, known_datasets
    from core.experiments.spec import experiment

    dataset = args.dataset.strip()
    if not dataset.lower().startswith("folder:") and dataset.lower().replace("_", "-") not in LOADERS:
        raise UserError(f"unknown dataset {dataset!r}; known datasets: {', '.join(known_datasets())}")
    spec = experiment(args.name, dataset, args.scale)
    spec = dataclasses.replace(spec, sources=parse_sources(args.sources), prior_train_steps=args.prior_train_steps or 0)
    spec.configs()    # every run's settings checked before any work
    spec.check_data()   # and its data: a missing image folder is said once, before any run starts
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder for the experiment's runs")
    launcher = _launcher(args, out)     # first: a missing engine or a wrong flag is one line, nothing created
    try:
        check_writable(out, f"the experiment folder {out}")
    except UserError:
        if launcher is not None:
            launcher.close()
        raise
    received: list[int] = []
    with StopOnSignals(received):
        end = _drive(spec, out, received, quiet=args.quiet, torchrun=args.torchrun or 0, launcher=launcher)
    from core.experiments.report import write_experiment_report

    try:
        report = write_experiment_report(spec, out)
    except OSError as e:
        raise UserError(f"cannot write the report in {out} ({e.strerror or type(e).__name__})") from None
    print(f"report: {report}")
    if len(spec.sources) > 1:
        print(sources_text(spec, out))
    if end is None or end.status == "failed":
        print(f"{PROG}: error: {end.message if end is not None else 'the experiment ended without a result'}",
              file=sys.stderr)
        return EXIT_FAILED
    if end.status == "stopped":
        print(f"{PROG}: {end.message}: {PROG} experiment {args.name} --dataset {dataset} --out {out} --scale "
              f"{args.scale}{_launch_flags(args)}", file=sys.stderr)
        return 128 + received[-1] if received else EXIT_INTERRUPTED
    return 0


def sources_text(spec: Any, out: Path) -> str:
    """The report's table per source of z as text: one line per run and source; under it, a line per run whose
    eval.json is there but could not be read, "<run>: <why>" (the run history's one line, as `vae-explorer runs`
    says it). Each run's eval.json is read once, by the report's reader."""
    from core.experiments.report import SOURCE_COLUMNS, read_experiment_eval, source_rows

    evals = {run.name: read_experiment_eval(out / run.name) for run in spec.runs}
    header = ["run", "z from", *(h.replace(" (our classifier)", "") for _, h in SOURCE_COLUMNS)]
    rows = [[printable(str(c))[:200] for c in row]          # a source's name or reason comes from the file
            for name, e in evals.items() if e.result for row in source_rows(name, e.result)]
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths, strict=True)).rstrip() for r in [header, *rows]]
    lines += [f"{printable(name)[:200]}: {printable(e.problem)[:200]}" for name, e in evals.items() if e.problem]
    return "\n".join(lines)


def _launcher(args: argparse.Namespace, out: Path) -> Any:
    """The launcher the flags ask for (None: the runs train one after another in this process)."""
    name = args.launcher or ("local" if args.parallel else None)
    given = {"--address": args.address, "--partition": args.partition, "--time": args.time,
             "--slurm-local": args.slurm_local or None, "--cpus-per-run": args.cpus_per_run,
             "--gpus-per-run": args.gpus_per_run, "--slurm-array": args.slurm_array or None,
             "--slurm-array-parallelism": args.slurm_array_parallelism}
    slurm_only = ("--partition", "--time", "--slurm-local", "--slurm-array", "--slurm-array-parallelism")
    allowed = {None: (), "local": (), "ray": ("--address", "--cpus-per-run", "--gpus-per-run"),
               "slurm": (*slurm_only, "--cpus-per-run", "--gpus-per-run")}[name]
    extra = [flag for flag, value in given.items() if value is not None and flag not in allowed]
    if extra:
        raise UserError(f"{extra[0]} is a setting of " + ("--launcher ray" if extra[0] == "--address" else
                        "--launcher slurm" if extra[0] in slurm_only else
                        "--launcher ray or slurm") + (f", not of --launcher {name}" if name else ""))
    if args.slurm_array_parallelism is not None and not args.slurm_array:
        raise UserError("--slurm-array-parallelism is a setting of --slurm-array (one job array for all runs); add "
                        "--slurm-array, or leave it out for one job per run")
    if args.slurm_array and args.parallel:
        raise UserError("--slurm-array submits every run in one job array; limit the runs at once with "
                        "--slurm-array-parallelism N, not --parallel")
    if name is None:
        return None
    if args.torchrun:
        raise UserError("--torchrun trains one run on several processes; it cannot be combined with --parallel or "
                        "--launcher")
    from core.experiments.durations import parse_duration
    from core.experiments.launchers import make_launcher

    time_min = max(1, round(parse_duration(args.time, "--time") / 60)) if args.time else 60
    return make_launcher(name, parallel=args.parallel or 0, address=args.address,
                         cpus_per_run=args.cpus_per_run or 1.0, gpus_per_run=args.gpus_per_run or 0.0,
                         partition=args.partition, time_min=time_min, slurm_cluster="local" if args.slurm_local
                         else None, slurm_array=args.slurm_array,
                         slurm_array_parallelism=args.slurm_array_parallelism, folder=out / ".launch" / "submitit")


def _launch_flags(args: argparse.Namespace) -> str:
    """The launch flags as given, to repeat in the command that continues the experiment."""
    flags = [("--torchrun", args.torchrun), ("--parallel", args.parallel), ("--launcher", args.launcher),
             ("--address", args.address), ("--cpus-per-run", args.cpus_per_run),
             ("--gpus-per-run", args.gpus_per_run), ("--partition", args.partition), ("--time", args.time),
             ("--slurm-array-parallelism", args.slurm_array_parallelism)]
    text = "".join(f" {flag} {value:g}" if isinstance(value, float) else f" {flag} {value}"
                   for flag, value in flags if value)
    text += f" --from {args.sources}" if args.sources != "prior" else ""
    text += f" --prior-train-steps {args.prior_train_steps}" if args.prior_train_steps else ""
    return text + (" --slurm-local" if args.slurm_local else "") + (" --slurm-array" if args.slurm_array else "")


def _drive(spec: Any, out: Path, received: list[int], *, quiet: bool, torchrun: int = 0, launcher: Any = None) -> Any:
    """Run the experiment, printing which run trains and one line per finished run; its ExperimentEnded."""
    from tqdm import tqdm

    from core.experiments.runner import ExperimentEnded, run_experiment
    from core.training.events import EpochSummary, LogMessage, RunEnded

    bar = tqdm(total=1000, unit="‰", file=sys.stderr, leave=False, disable=quiet, dynamic_ncols=True,
               bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
    end = None
    try:
        for ev in run_experiment(spec, out, should_stop=lambda: bool(received), torchrun=torchrun,
                                 launcher=launcher):
            if isinstance(ev, ExperimentEnded):
                end = ev
                break
            bar.n = int(ev.fraction * 1000)
            bar.set_description(f"{ev.run} ({ev.index + 1}/{ev.total})", refresh=False)
            bar.refresh()
            train = ev.train_event
            if train is None and ev.message and ev.stage != "done":
                bar.write(ev.message, file=sys.stdout if ev.stage != "failed" else sys.stderr)
            elif isinstance(train, EpochSummary) and not quiet and train.val:
                metric = "elbo" if "elbo" in train.val else "loss"
                bar.write(f"  {ev.run}: epoch {train.epoch} val {metric} {train.val.get(metric, float('nan')):.4g}",
                          file=sys.stderr)
            elif isinstance(train, LogMessage) and train.level == "error":
                bar.write(f"  {ev.run}: error: {train.message.splitlines()[0]}", file=sys.stderr)
            elif isinstance(train, RunEnded) and train.status not in ("stopped",):
                bar.write(f"  {ev.run}: {train.status.replace('_', ' ')}: {train.reason}", file=sys.stdout)
    finally:
        bar.close()
    return end
