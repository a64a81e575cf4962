"""A report of one or more runs as ONE self-contained HTML file that opens in any browser, offline.

Everything is inside the file: the curves are inline SVG drawn here (one colour per run; the legend names the settings
that differ), each run's newest sample/reconstruction grid is a base64 PNG, and the tables (metrics, the settings that
differ, each run's whole config) are plain HTML. No scripts, stylesheets or fonts are fetched.
"""

from __future__ import annotations

import base64
import html
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.files import FileRefused, atomic_write_text, printable, read_regular
from core.runs.evaluation import RunEval, eval_numbers, hole_scores, read_run_eval
from core.runs.history import RunSummary, Series, config_diff, flatten_config, load_series, read_run

# matplotlib's tab10: distinct, and readable on white.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
# Curves first in this order, then any other series; the loss weight beta is a setting, not a result.
PLOT_ORDER = ("loss", "val loss", "val elbo", "recon", "kl", "val recon", "val kl")
NOT_PLOTTED = ("beta", "val beta")
MAX_POINTS = 2000   # per curve: more points than pixels only make the file larger


# ------------------------------------------------------------------------------------------------ SVG
def _ticks(low: float, high: float, count: int = 6) -> list[float]:
    """Round tick values covering [low, high]."""
    if not high > low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def svg_line_plot(curves: Sequence[tuple[str, str, np.ndarray, np.ndarray]], *, title: str, x_label: str = "step",
                  width: int = 520, height: int = 280) -> str:
    """An inline SVG line plot: one polyline per (label, colour, x, y) curve, with axes, ticks and a title. Points
    that are not finite are left out."""
    left, right, top, bottom = 64, 14, 28, 40
    pw, ph = width - left - right, height - top - bottom
    cleaned = []
    for label, colour, x, y in curves:
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        keep = np.isfinite(x) & np.isfinite(y)
        x, y = x[keep], y[keep]
        if len(x) > MAX_POINTS:
            idx = np.unique(np.linspace(0, len(x) - 1, MAX_POINTS).astype(np.int64))
            x, y = x[idx], y[idx]
        if len(x):
            cleaned.append((label, colour, x, y))
    parts = [f'<svg class="plot" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
             f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
             f'<text x="{width / 2:.0f}" y="18" text-anchor="middle" font-size="14" font-weight="bold">'
             f'{html.escape(title)}</text>']
    if not cleaned:
        parts.append(f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" fill="#777">no data'
                     '</text></svg>')
        return "".join(parts)
    x_low = min(float(c[2].min()) for c in cleaned)
    x_high = max(float(c[2].max()) for c in cleaned)
    y_low = min(float(c[3].min()) for c in cleaned)
    y_high = max(float(c[3].max()) for c in cleaned)
    if x_high == x_low:
        x_low, x_high = x_low - 1, x_high + 1
    if y_high == y_low:
        pad = abs(y_low) * 0.05 or 1.0
        y_low, y_high = y_low - pad, y_high + pad

    def px(x: np.ndarray | float) -> Any:
        return left + (np.asarray(x) - x_low) / (x_high - x_low) * pw

    def py(y: np.ndarray | float) -> Any:
        return top + (1 - (np.asarray(y) - y_low) / (y_high - y_low)) * ph

    parts.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
    for t in _ticks(y_low, y_high):
        y = float(py(t))
        parts.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
                     f'<text x="{left - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="10">{_fmt(t)}</text>')
    for t in _ticks(x_low, x_high):
        x = float(px(t))
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top + ph}" y2="{top + ph + 4}" stroke="#999"/>'
                     f'<text x="{x:.1f}" y="{top + ph + 15}" text-anchor="middle" font-size="10">{_fmt(t)}</text>')
    parts.append(f'<text x="{left + pw / 2:.0f}" y="{height - 6}" text-anchor="middle" font-size="11">'
                 f'{html.escape(x_label)}</text>')
    for label, colour, x, y in cleaned:
        points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(px(x), py(y), strict=True))
        if len(x) == 1:
            parts.append(f'<circle cx="{float(px(x[0])):.1f}" cy="{float(py(y[0])):.1f}" r="3" fill="{colour}">'
                         f'<title>{html.escape(label)}</title></circle>')
        else:
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{points}">'
                         f'<title>{html.escape(label)}</title></polyline>')
    parts.append("</svg>")
    return "".join(parts)


# ------------------------------------------------------------------------------------------------ pieces
def newest_sample_png(run: Path) -> Path | None:
    """The newest picture in the run's samples/ folder (the trainer writes one per epoch: epoch-NNNN.png)."""
    try:
        pngs = [p for p in (run / "samples").iterdir() if p.suffix.lower() == ".png" and p.is_file()]
    except OSError:
        return None
    return max(pngs, key=lambda p: (p.name, p.stat().st_mtime), default=None)


MAX_SAMPLE_PNG_BYTES = 32 << 20   # a preview grid is tens of kB; a bigger file is not one (a 10 GB sparse file)


def png_img(path: Path, alt: str) -> str:
    try:
        data = read_regular(path, MAX_SAMPLE_PNG_BYTES, within=path.parent)
    except OSError:
        return "<p>(the sample grid cannot be read)</p>"
    except FileRefused as e:
        return f"<p>(the sample grid is not shown: {html.escape(str(e))})</p>"
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "<p>(the sample grid is not a PNG)</p>"
    encoded = base64.b64encode(data).decode("ascii")
    return (f'<img class="grid" alt="{html.escape(alt)}" title="{html.escape(path.name)}" '
            f'src="data:image/png;base64,{encoded}">')


def run_labels(summaries: Sequence[RunSummary], diff: dict[str, list[Any]], most: int = 4) -> list[str]:
    """Legend labels: each run's name and the settings that differ from the other runs (the first few)."""
    keys = [k for k in diff if k not in ("train.device", "train.threads", "data.data_root")][:most]
    labels = []
    for i, s in enumerate(summaries):
        settings = ", ".join(f"{k.split('.', 1)[-1]}={_value(diff[k][i])}" for k in keys)
        labels.append(f"{s.name} ({settings})" if settings else s.name)
    return labels


def _value(value: Any) -> str:
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or "all"
    return "" if value is None else str(value)


def _date(when: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when)) if when is not None else ""


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], cls: str = "") -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_value(v))}</td>" for v in row) + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _plots(series: list[dict[str, Series]], labels: list[str]) -> list[str]:
    names: list[str] = [n for n in PLOT_ORDER if any(n in s for s in series)]
    for s in series:
        names += [n for n in s if n not in names and n not in NOT_PLOTTED and n != "lr"]
    names += ["lr"] if any("lr" in s for s in series) else []
    plots = []
    for name in names:
        curves = [(labels[i], COLOURS[i % len(COLOURS)], s[name].step, s[name].value)
                  for i, s in enumerate(series) if name in s]
        plots.append(svg_line_plot(curves, title=name, x_label="step"))
    return plots


_STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f3f3f3; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
.legend span.swatch { display: inline-block; width: 14px; height: 4px; margin: 0 6px 3px 12px; }
.grids { display: flex; flex-wrap: wrap; gap: 16px; }
.grids figure { margin: 0; }
img.grid { image-rendering: pixelated; width: 320px; border: 1px solid #ccc; }
.unreadable { color: #a00; }
"""


def unreadable_line(run: str, problem: str) -> str:
    """A report's one line on a run's evaluation file that is there but could not be read: "<run>: <why>" (the reader's
    line, read_run_eval's `problem`), in the reports' warning colour."""
    return f'<p class="unreadable">{html.escape(printable(f"{run}: {problem}")[:300])}</p>'


def evaluation_table(summaries: Sequence[RunSummary], evals: Sequence[RunEval]) -> str:
    """The runs' eval.json numbers (test split): likelihood, SSIM, conditional accuracy, Fréchet score, precision,
    recall and sharpness, and a line per run whose evaluation file is there but damaged (`evals`: read_run_eval of
    each run); "" when no run has been evaluated and none has a damaged file."""
    numbers = [eval_numbers(e.result) for e in evals]
    labels: list[str] = []
    for n in numbers:
        labels += [k for k in n if k not in labels]
    problems = "".join(unreadable_line(s.name, e.problem) for s, e in zip(summaries, evals, strict=True)
                       if e.problem)
    if not labels:
        return f"<h2>Evaluation (test split)</h2>{problems}" if problems else ""
    rows = [[s.name, *(n.get(k) for k in labels)] for s, n in zip(summaries, numbers, strict=True) if n]
    return ("<h2>Evaluation (test split)</h2>" + _table(["run", *labels], rows, "evaluation") + problems +
            "<p>Precision and recall: the share of samples inside the real images' k-NN manifold (k = 3) and of real "
            "images inside the samples', in the judge classifier's features (low recall: the samples miss part of "
            "the data's variety). Sharpness: the samples' high-frequency (Laplacian) energy over the real test "
            "images'; 1 = as sharp, below 1 blurrier. The Fréchet score uses the same judge: compare it only between "
            "runs on the same dataset.</p>")


def holes_table(summaries: Sequence[RunSummary], evals: Sequence[RunEval]) -> str:
    """Per run and source of z (prior, mixture, diffusion prior), the hole score overall and per class; "" when no
    evaluated run has one."""
    rows, classes = [], 0
    for s, e in zip(summaries, evals, strict=True):
        result = e.result
        k = result.get("hole_k") if result else None
        for source, score, per_class in hole_scores(result):
            rows.append([s.name, source, k if isinstance(k, int) else "", score, *per_class])
            classes = max(classes, len(per_class))
    if not rows:
        return ""
    rows = [row + [None] * (4 + classes - len(row)) for row in rows]   # run, z from, k, score, classes
    return ("<h2>The prior's holes (test split)</h2>" +
            _table(["run", "z from", "k", "hole score", *(f"class {c}" for c in range(classes))], rows, "holes") +
            "<p>The share of sampled z in a hole: z whose nearest test-image latent (posterior mean) of its class is "
            "farther than that latent's own k-th neighbour, i.e. mass the sampler puts where no image is encoded. "
            "Near 1 for N(0, I) against a cloud of posterior means that does not fill it (blurry, ambiguous samples); "
            "near 0 for a sampler fitted to the data (the class mixture, the diffusion prior). An empty cell: the "
            "class has k or fewer test images.</p>")


# ------------------------------------------------------------------------------------------------ the report
def report_html(paths: Sequence[str | Path], *, title: str | None = None) -> str:
    """The report's HTML text (see write_report)."""
    summaries = [read_run(p) for p in paths]
    diff = config_diff(summaries)
    labels = run_labels(summaries, diff)
    series = [load_series(s.path) if s.status != "unreadable" else {} for s in summaries]
    title = title or (f"Run {summaries[0].name}" if len(summaries) == 1 else f"{len(summaries)} runs compared")
    out = [f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>',
           f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>",
           f"<p>Written {_date(time.time())} by vae-explorer from {len(summaries)} run folder(s).</p>"]
    # Legend
    out.append('<h2>Runs</h2><p class="legend">' + "".join(
        f'<span class="swatch" style="background:{COLOURS[i % len(COLOURS)]}"></span>{html.escape(label)}'
        for i, label in enumerate(labels)) + "</p>")
    # Metrics table
    metrics: list[str] = []
    for s in summaries:
        metrics += [k for k in s.headline if k not in metrics]
    rows = [[s.name, s.status, s.kind, s.dataset, s.subset or "all", f"{s.epochs_done}/{s.epochs_total or '?'}",
             s.step, s.best_val, _date(s.started), *(s.headline.get(k) for k in metrics), s.reason]
            for s in summaries]
    out.append(_table(["run", "status", "kind", "dataset", "subset", "epochs", "step", "best val", "started",
                       *(f"val {k}" for k in metrics), "notes"], rows, "metrics"))
    evals = [read_run_eval(s.path) for s in summaries]     # the run history's one reader of evaluation files
    out.append(evaluation_table(summaries, evals))
    out.append(holes_table(summaries, evals))
    # Curves
    plots = _plots(series, labels)
    out.append("<h2>Curves</h2>")
    out.append('<div class="plots">' + "".join(plots) + "</div>" if plots else "<p>No curves recorded.</p>")
    # Sample grids
    out.append("<h2>Samples and reconstructions</h2><p>Each run's newest preview: one row of samples per class, "
               "then (VAE) validation images and their reconstructions.</p><div class=\"grids\">")
    for s, label in zip(summaries, labels, strict=True):
        png = newest_sample_png(s.path)
        picture = png_img(png, f"samples of {s.name}") if png is not None else "<p>(no sample grid)</p>"
        out.append(f"<figure>{picture}<figcaption>{html.escape(label)}"
                   f"{' — ' + html.escape(png.stem) if png is not None else ''}</figcaption></figure>")
    out.append("</div>")
    # Settings
    if len(summaries) > 1:
        out.append("<h2>Settings that differ</h2>")
        out.append(_table(["setting", *(s.name for s in summaries)], [[k, *v] for k, v in diff.items()], "diff")
                   if diff else "<p>All runs have the same settings.</p>")
    out.append("<h2>Configuration</h2>")
    for s in summaries:
        flat = flatten_config(s.config)
        body = (_table(["setting", "value"], list(flat.items()), "config") if flat
                else f'<p class="unreadable">No configuration: {html.escape(s.reason)}</p>')
        out.append(f"<details{' open' if len(summaries) == 1 else ''}><summary>{html.escape(s.name)}</summary>"
                   f"{body}</details>")
    out.append("</body></html>\n")
    return "\n".join(out)


def write_report(paths: Sequence[str | Path], out: str | Path, *, title: str | None = None) -> Path:
    """Write one self-contained HTML report of the runs at `paths` (curves, newest sample grids, metrics, configs and
    the settings that differ) to `out`, atomically; returns `out`. Unreadable runs appear with their reason."""
    return atomic_write_text(out, report_html(paths, title=title))
