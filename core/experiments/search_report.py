"""A search's report: OUT/search-report.html, one self-contained HTML file.

What the study found: the best trial (or, for two objectives, the Pareto front, drawn against every other trial) with
its settings, its samples and how far it moved from the preset's own settings (trial 0); the best value so far
against trial number; which settings mattered (Optuna's parameter importances); every trial with its state, settings
and values. Below, the ordinary runs report (curves, samples, settings) of the best trials' run folders.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np

from core.experiments.runner import EVAL_SAMPLES, save_sample_grid
from core.experiments.search import OBJECTIVES, best_trial_numbers, import_optuna
from core.files import atomic_write_text
from core.runs.report import COLOURS, png_img, report_html, svg_line_plot

_MOST_RUNS = 4      # best trials whose runs report follows


def _num(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—" if value is None else html.escape(str(value))
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else "—"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="experiment"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _short(key: str) -> str:
    return key.split(".", 1)[-1]


def _trials_table(trials: list[Any], objectives: tuple[str, ...], keys: list[str], best: set[int]) -> str:
    rows = []
    for t in trials:
        values = t.values or [None] * len(objectives)
        seconds = t.duration.total_seconds() if t.duration is not None else None
        note = t.user_attrs.get("why") or ("the preset's settings" if t.user_attrs.get("preset") else "")
        rows.append([f"<b>{t.number}</b>" if t.number in best else str(t.number), t.state.name.lower(),
                     *[_num(t.params.get(k)) for k in keys], *[_num(v) for v in values], _num(seconds),
                     html.escape(str(t.user_attrs.get("run", ""))), html.escape(note)])
    return _table(["trial", "state", *[_short(k) for k in keys], *objectives, "seconds", "run folder", "note"], rows)


def _pareto_svg(trials: list[Any], objectives: tuple[str, ...], front: set[int], width: int = 520,
                height: int = 320) -> str:
    """Every complete trial as a grey dot, the Pareto front's in colour and joined, on the two objectives."""
    points = [(t.values[0], t.values[1], t.number in front) for t in trials if t.values]
    if not points:
        return ""
    xs, ys = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    left, right, top, bottom = 64, 14, 28, 44
    pw, ph = width - left - right, height - top - bottom
    x0, x1 = float(xs.min()), float(xs.max())
    y0, y1 = float(ys.min()), float(ys.max())
    x1, y1 = (x1 + 1.0 if x1 == x0 else x1), (y1 + 1.0 if y1 == y0 else y1)

    def sx(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def sy(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    parts = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" role="img">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">Pareto front</text>',
             f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>',
             f'<text x="{left + pw / 2}" y="{height - 8}" text-anchor="middle" font-size="11">'
             f"{html.escape(OBJECTIVES[objectives[0]].label)}</text>",
             f'<text x="14" y="{top + ph / 2}" font-size="11" transform="rotate(-90 14 {top + ph / 2})" '
             f'text-anchor="middle">{html.escape(objectives[1])}</text>']
    for v in (x0, x1):
        parts.append(f'<text x="{sx(v):.1f}" y="{top + ph + 14}" text-anchor="middle" font-size="10">{_num(v)}</text>')
    for v in (y0, y1):
        parts.append(f'<text x="{left - 4}" y="{sy(v) + 3:.1f}" text-anchor="end" font-size="10">{_num(v)}</text>')
    on_front = sorted((x, y) for x, y, f in points if f)
    if len(on_front) > 1:
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in on_front)
        parts.append(f'<polyline points="{line}" fill="none" stroke="{COLOURS[1]}" stroke-width="1.5"/>')
    for x, y, f in points:
        colour, r = (COLOURS[1], 5) if f else ("#999", 3)
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{r}" fill="{colour}"/>')
    return "".join(parts) + "</svg>"


def _best_so_far_svg(trials: list[Any], objective: str) -> str:
    done = [t for t in trials if t.values]
    if not done:
        return ""
    sign = 1.0 if OBJECTIVES[objective].direction == "maximize" else -1.0
    best, xs, ys = -math.inf, [], []
    for t in done:
        best = max(best, sign * t.values[0])
        xs.append(t.number)
        ys.append(sign * best)
    return svg_line_plot([("best so far", COLOURS[0], np.array(xs), np.array(ys))],
                         title=f"best {objective} so far", x_label="trial")


def _importances(study: Any, keys: list[str]) -> str:
    optuna = import_optuna()
    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), target=lambda t: t.values[0])
    except (RuntimeError, ValueError, ZeroDivisionError) as e:
        return f"<p>Parameter importances need more complete trials ({html.escape(str(e).splitlines()[0])}).</p>"
    rows = [[html.escape(_short(k)), f'<span style="display:inline-block;background:{COLOURS[0]};height:10px;'
             f'width:{200 * v:.0f}px"></span> {v:.2f}'] for k, v in found.items()]
    return _table(["setting", "importance (fANOVA, share of the first objective's variance)"], rows)


def _best_section(trials: list[Any], out: Path, objectives: tuple[str, ...], best: list[int], keys: list[str]) -> str:
    if not best:
        return "<p>No trial has completed yet.</p>"
    by_number = {t.number: t for t in trials}
    lead = by_number[best[0]]
    parts = []
    preset = next((t for t in trials if t.user_attrs.get("preset") and t.values), None)
    name = OBJECTIVES[objectives[0]].label
    if preset is not None and len(objectives) == 1:
        gain = (lead.values[0] - preset.values[0]) * (1 if OBJECTIVES[objectives[0]].direction == "maximize" else -1)
        parts.append(f"<p>Best trial {lead.number}: {name} {_num(lead.values[0])}; the preset's own settings "
                     f"(trial {preset.number}) scored {_num(preset.values[0])}: "
                     f"{'better by' if gain > 0 else 'no better; by'} {_num(abs(gain))}.</p>")
    rows = [[str(n), *[_num(by_number[n].params.get(k)) for k in keys], *[_num(v) for v in by_number[n].values]]
            for n in best]
    parts.append(_table(["trial", *[_short(k) for k in keys], *objectives], rows))
    run = out / str(lead.user_attrs.get("run", ""))
    grid = run / EVAL_SAMPLES
    if not grid.is_file() and (run / "checkpoints" / "best.safetensors").is_file():
        from core.training.checkpoint import load_model

        save_sample_grid(load_model(run / "checkpoints" / "best.safetensors").model, grid)
    if grid.is_file():
        parts.append(f"<h3>Samples of trial {lead.number} (one row per class)</h3>"
                     + png_img(grid, f"samples of trial {lead.number}"))
    return "".join(parts)


def search_report_html(study: Any, out: Path) -> str:
    objectives = tuple(study.user_attrs.get("objectives") or ("elbo",))
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    keys = sorted({k for t in trials for k in t.params})
    best = list(best_trial_numbers(study))
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
    title = f"Settings search on {study.user_attrs.get('dataset', '?')}"
    section = [f"<h2>{html.escape(title)}</h2>",
               f"<p>Objective: {html.escape(' and '.join(OBJECTIVES[o].label for o in objectives))}, on the "
               f"validation split. {len(trials)} trials: "
               f"{html.escape(', '.join(f'{n} {s}' for s, n in sorted(states.items())))}. Searched: "
               f"{html.escape(', '.join(_short(k) for k in keys))}.</p>",
               "<h3>" + ("Best trial" if len(objectives) == 1 else "Pareto front") + "</h3>",
               _best_section(trials, out, objectives, best, keys)]
    if len(objectives) == 2:
        section.append(_pareto_svg(trials, objectives, set(best)))
    section += [_best_so_far_svg(trials, objectives[0]), "<h3>Which settings mattered</h3>",
                _importances(study, keys), "<h3>Trials</h3>", _trials_table(trials, objectives, keys, set(best))]
    runs = [out / str(t.user_attrs.get("run")) for t in trials if t.number in best[:_MOST_RUNS]]
    runs = [r for r in runs if r.is_dir()]
    body = "\n".join(section)
    if not runs:
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>\n")
    text = report_html(runs, title=title)
    at = text.find("<h2>Runs</h2>")
    at = at if at >= 0 else text.find("</body>")
    return text[:at] + body + "\n" + text[at:]


def write_search_report(study: Any, out: str | Path) -> Path:
    """Write OUT/search-report.html (atomically); returns its path."""
    path = Path(out) / "search-report.html"
    atomic_write_text(path, search_report_html(study, Path(out)))
    return path
