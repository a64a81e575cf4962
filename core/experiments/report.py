"""An experiment's report: OUT/report.html, one self-contained HTML file.

On top, what the experiment measured (from each run's eval.json, read once per run): for a beta sweep the
rate-distortion curve (KL against reconstruction, nats per image, one point per beta) and a table of active units,
conditional accuracy and the Frechet score per beta; for the reference study our numbers beside the study's
published ones and why its SSIM (0.99872, 0.99969) cannot come from a correct SSIM of blurry samples. Below, the
ordinary runs report of core.runs.report (curves, sample grids, every run's settings).

A run whose eval.json is there but could not be read (cut short, not JSON, a FIFO ...) reads "damaged", not "not
evaluated", in the experiment's table, with the run history's one line on why under it (as the runs report says it).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.experiments.runner import EVAL_SAMPLES
from core.experiments.spec import ExperimentSpec
from core.files import atomic_write_text
from core.runs.evaluation import RunEval, read_run_eval
from core.runs.report import COLOURS, png_img, report_html, svg_line_plot, unreadable_line

# The reference study's published numbers (../shared/reference/cvae-cifar10-student-study.txt, section 5.1): SSIM of
# generated images against the CIFAR-10 test images of the class; no likelihood, accuracy or FID was reported.
STUDY_SSIM = {"airplane": 0.99872, "frog": 0.99969}

FRECHET_NOTE = ("Fréchet distance in the features of our small per-dataset classifier (not Inception's FID): "
                "comparable only between runs on the same dataset")


def _fid_columns(results: Sequence[dict[str, Any]]) -> tuple[list[str], str]:
    """The Fréchet columns' headers and their footnote: our classifier's score always; Inception's FID beside it
    only when some run has one (torch-fidelity and its weights were here), with the reason when it is missing."""
    headers = ["Fréchet score (our classifier)*"]
    note = f"<p>* {html.escape(FRECHET_NOTE)}."
    if any(isinstance(r.get("fid"), (int, float)) for r in results):
        headers.append("FID (Inception-v3)")
        note += " FID (Inception-v3): the standard FID, torch-fidelity's Inception weights."
    reasons = sorted({str(r["fid_note"]) for r in results if r.get("fid_note") and "fid" not in r})
    if reasons:
        text = "; ".join(reasons)
        note += " " + html.escape(text[:1].upper() + text[1:]) + "."
    return headers, note + "</p>"


def _fid_cells(result: dict[str, Any], headers: Sequence[str]) -> list[str]:
    cells = [_num(result.get("fid_like"))]
    return cells + [_num(result.get("fid"))] if len(headers) > 1 else cells


def read_experiment_eval(run_dir: Path) -> RunEval:
    """The run's eval.json (the experiment's own evaluation, never a saved `eval --save` one) and, when it is there
    but could not be read, why in one line: the run history's one reader (a FIFO or a huge file is refused, not
    read). Never raises."""
    return read_run_eval(run_dir, saved=False)


def read_eval(run_dir: Path) -> dict[str, Any] | None:
    """read_experiment_eval's evaluation alone: None when eval.json is missing or unreadable."""
    return read_experiment_eval(run_dir).result


def _not_evaluated(read: RunEval) -> str:
    """What a table of the experiment says for a run without numbers: "damaged" where its eval.json is there but
    could not be read (the Runs tab's word; the reason is a line under the table), else "not evaluated"."""
    return "damaged" if read.problem else "not evaluated"


def _problem_lines(evals: dict[str, RunEval]) -> str:
    """A line per run whose eval.json could not be read, under the experiment's table (as the runs report's)."""
    return "".join(unreadable_line(name, e.problem) for name, e in evals.items() if e.problem)


def _num(value: Any, digits: int = 4) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "—"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}g}" if math.isfinite(value) else "—"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table class="experiment"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _accuracy(result: dict[str, Any]) -> str:
    acc = result.get("conditional_accuracy")
    return f"{acc:.1%}" if isinstance(acc, float) else "—"


# (key in eval.json, column header) of the sample-quality columns
DIVERSITY_COLUMNS = (("precision", "precision"), ("recall", "recall"), ("sharpness", "sharpness"),
                     ("hole_score", "hole score"))
DIVERSITY_HEADERS = tuple(header for _, header in DIVERSITY_COLUMNS)
DIVERSITY_NOTE = ("<p>Precision and recall (Kynkäänniemi et al. 2019, k = 3, in our classifier's features): the share "
                  "of samples that look like some real test image, and of real test images that some sample looks "
                  "like; a low recall is the survey's limited diversity. Sharpness: the samples' high-frequency "
                  "(Laplacian) energy over the test images'; 1 = as sharp, below 1 blurrier. Hole score (a VAE): the "
                  "share of the prior's z whose nearest test-image latent of their class is farther than that "
                  "latent's own k-th neighbour (k = 5), i.e. where no image is encoded; the per-class numbers are in "
                  "the evaluation section below.</p>")


def _diversity_cells(result: dict[str, Any]) -> list[str]:
    return [_num(result.get(key), 3) for key, _ in DIVERSITY_COLUMNS]


# ------------------------------------------------------------------------------------------------ beta sweep
def beta_sweep_section(spec: ExperimentSpec, out_dir: Path, evals: dict[str, RunEval]) -> str:
    rows, points, grids = [], [], []
    results = {run.name: evals[run.name].result for run in spec.runs}
    fid_headers, fid_note = _fid_columns([r for r in results.values() if r])
    for run in spec.runs:
        beta = float(spec.config(run).model.beta)
        result = results[run.name]
        grid = out_dir / run.name / EVAL_SAMPLES
        if grid.is_file():
            grids.append(f'<figure>{png_img(grid, f"samples at beta={beta:g}")}<figcaption>β = {beta:g}'
                         "</figcaption></figure>")
        if result is None:
            blank = ["—"] * (5 + len(fid_headers) + len(DIVERSITY_COLUMNS))
            rows.append([run.name, f"{beta:g}", _not_evaluated(evals[run.name]), *blank])
            continue
        kl, recon = result.get("kl"), result.get("recon")
        if isinstance(kl, (int, float)) and isinstance(recon, (int, float)):
            points.append((beta, float(kl), float(recon)))
        units = f"{result.get('active_units', '—')} / {result.get('latent_dim', '—')}"
        rows.append([run.name, f"{beta:g}", _num(kl), _num(recon), _num(result.get("elbo")), units,
                     _accuracy(result), *_fid_cells(result, fid_headers), *_diversity_cells(result),
                     _num(result.get("ssim"), 3)])
    points.sort(key=lambda p: p[1])
    curves = []
    if points:
        curves.append(("rate-distortion", "#777777", [p[1] for p in points], [p[2] for p in points]))
        curves += [(f"beta={b:g}: KL {k:.3g}, recon {r:.3g}", COLOURS[i % len(COLOURS)], [k], [r])
                   for i, (b, k, r) in enumerate(points)]
    plot = svg_line_plot(curves, title="rate-distortion: reconstruction vs KL (nats per image)",
                         x_label="rate: KL(q(z|x) || p(z)), nats per image")
    legend = ", ".join(f'<span style="color:{COLOURS[i % len(COLOURS)]}">β={b:g}</span>'
                       for i, (b, _, _) in enumerate(points))
    return ("<h2>Rate and distortion per β</h2>"
            "<p>Each point is one run, evaluated on the test split: its rate (the KL term) against its distortion "
            "(the reconstruction term, −log p(x|z)), both in nats per image. A larger β buys a smaller rate with a "
            "larger distortion; the ELBO is −(rate + distortion).</p>"
            f'<div class="plots">{plot}</div><p class="legend">{legend}</p>'
            + _table(["run", "β", "KL (rate)", "reconstruction (distortion)", "ELBO", "active units",
                      "conditional accuracy", *fid_headers, *DIVERSITY_HEADERS, "SSIM (reconstructions)"], rows)
            + _problem_lines(evals) + fid_note + DIVERSITY_NOTE
            + ("<h2>Samples per β</h2><p>The evaluated weights of each run, one row per class, the same noise for "
               "every β: what the numbers above look like.</p>"
               f'<div class="grids">{"".join(grids)}</div>' if grids else ""))


# ------------------------------------------------------------------------------------------------ reference study
def reference_study_section(spec: ExperimentSpec, out_dir: Path, evals: dict[str, RunEval]) -> str:
    rows = []
    study_rows = []
    results = [evals[run.name].result or {} for run in spec.runs]
    fid_headers, fid_note = _fid_columns([r for r in results if r])
    for run, result in zip(spec.runs, results, strict=True):
        cfg = spec.config(run)
        subset = (f"class {', '.join(cfg.data.classes)}" if cfg.data.classes else
                  f"{cfg.data.per_class} per class" if cfg.data.per_class else "all images")
        model = "DDPM" if cfg.model.kind == "diffusion" else ("VAE, study's settings" if "study" in run.name
                                                             else "VAE, ours")
        rows.append([run.name, subset, model, _num(result.get("elbo")), _num(result.get("ssim"), 3),
                     _num(result.get("ssim_samples_vs_test_as_study"), 5),
                     _num(result.get("ssim_samples_vs_test_correct"), 3), _accuracy(result),
                     *_fid_cells(result, fid_headers), *_diversity_cells(result),
                     "" if result else _not_evaluated(evals[run.name])])
        published = STUDY_SSIM.get(cfg.data.classes[0]) if len(cfg.data.classes) == 1 else None
        if published is not None and cfg.model.kind == "vae":
            study_rows.append([run.name, f"{published:.5f}", _num(result.get("ssim_samples_vs_test_as_study"), 5),
                               _num(result.get("ssim_samples_vs_test_correct"), 3), _num(result.get("ssim"), 3)])
    parts = ["<h2>Our measurements</h2>",
             _table(["run", "training images", "model", "test ELBO (nats)", "SSIM: reconstruction vs its original",
                     "SSIM: samples vs test images, as the study", "SSIM: samples vs test images, correct",
                     "conditional accuracy", *fid_headers, *DIVERSITY_HEADERS, "notes"], rows),
             _problem_lines(evals), fid_note, DIVERSITY_NOTE,
             "<h2>Beside the study's published numbers</h2>",
             "<p>The study reports one number per class: the SSIM of its generated images against the test images of "
             "the class, 0.99872 for planes and 0.99969 for frogs (section 5.1). It reports no likelihood, accuracy "
             "or Fréchet score.</p>"]
    if study_rows:
        parts.append(_table(["run", "study's published SSIM", "ours, as the study", "ours, correct",
                             "ours: reconstruction vs original"], study_rows))
    else:
        parts.append("<p>(These runs are not on the study's classes, airplane and frog; the SSIM columns above "
                     "show the same comparison on this dataset's classes.)</p>")
    parts.append(_ssim_explanation(results))
    return "".join(parts)


def _measured(results: Sequence[dict[str, Any]], key: str) -> list[float]:
    return [float(r[key]) for r in results if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])]


def _ssim_explanation(results: Sequence[dict[str, Any]]) -> str:
    """Why 0.99872 / 0.99969 cannot be a correct SSIM of samples, with this experiment's own numbers."""
    recon = _measured(results, "ssim")
    as_study = _measured(results, "ssim_samples_vs_test_as_study")
    correct = _measured(results, "ssim_samples_vs_test_correct")
    ours = ""
    if recon and as_study and correct:
        ours = (f"<p>In this experiment: reconstructions of test images score {min(recon):.3f}–{max(recon):.3f} "
                f"against their own originals; samples against test images of their class score "
                f"{min(correct):.3f}–{max(correct):.3f} when computed correctly, and {min(as_study):.4f}–"
                f"{max(as_study):.4f} computed as the study did, for every model alike, good or bad.</p>")
    return (
        "<h2>Why the study's SSIM cannot be right</h2>"
        "<p>SSIM compares two images' local means, variances and covariance, each stabilised by a constant: "
        "C1 = (0.01·L)², C2 = (0.03·L)², where L is the data range of the pixels. It is a fidelity measure: it is "
        "meaningful between an image and its own reconstruction (computed per image with a 7-pixel window: "
        "“reconstruction vs its original”). A generated sample and some test image of the same class are different "
        "pictures whose local structures do not line up, so correctly (L = 1 for pixels in [0, 1]) they score no "
        "higher than, and for a good model well below, the reconstructions of the images themselves; how low "
        "depends on the data (digits on a shared black "
        "background score higher than CIFAR-10 photographs, since flat regions count as matching). Blurry samples "
        "lack the local variance SSIM's contrast term asks for and score lower still. A score of 0.9987 for samples "
        "against test images would mean samples closer to unrelated test photographs than a good VAE's "
        "reconstructions are to their own originals.</p>"
        "<p>The study's 0.9987 and 0.9997 are what one gets when pixels in [0, 1] are scored with the data range of "
        "8-bit pixels (L = 255): then C1 ≈ 6.5 and C2 ≈ 58.5 dwarf every local mean and variance (at most 1 and "
        "0.25), each factor of SSIM is ≈ 1, and any two images score ≈ 0.99 whatever they show — the column "
        "“samples vs test images, as the study” computes exactly that. A value that near 1 says the computation "
        "measured nothing, not that the samples preserve structure.</p>" + ours)


# ------------------------------------------------------------------------------------------------ sources of z
# (key in eval.json, header) of each source's sample metrics; a source after the first carries its name as a prefix
# ("density_fid_like"), as `vae-explorer eval --from` writes them.
SOURCE_COLUMNS = (("conditional_accuracy", "conditional accuracy"), ("fid_like", "Fréchet score (our classifier)"),
                  ("precision", "precision"), ("recall", "recall"), ("sharpness", "sharpness"),
                  ("hole_score", "hole score"))
SOURCE_NOTE = ("<p>One row per run and source of the samples' z: the VAE's prior N(0, I); <code>density</code>, a "
               "Gaussian mixture per class fitted to the encoded training set; <code>diffusion-prior</code>, a "
               "class-conditional diffusion model fitted to it (<code>--from</code>). Every source decodes the same "
               "number of samples per class with the same seed, judged as in the table above; a lower hole score "
               "means fewer z where no image is encoded.</p>")


def source_rows(run: str, result: dict[str, Any]) -> list[list[str]]:
    """The rows of one run's evaluation: its first source (`samples_from`) and each other source it holds."""
    first = result.get("samples_from") if isinstance(result.get("samples_from"), str) else "prior"
    others = [k[:-len("_fid_like")] for k in result if k.endswith("_fid_like") and k != "fid_like"]
    rows = []
    for source, prefix in [(first, ""), *((name, f"{name}_") for name in others)]:
        cells = [_num(result.get(prefix + key), 3) for key, _ in SOURCE_COLUMNS]
        acc = result.get(prefix + "conditional_accuracy")
        cells[0] = f"{acc:.1%}" if isinstance(acc, float) else "—"
        rows.append([run, source, *cells])
    for key, why in result.items():     # a source that could not be fitted to this run's model, and why
        if key.endswith("_not_judged"):
            rows.append([run, f"{key[:-len('_not_judged')]}: not judged ({why})", *["—"] * len(SOURCE_COLUMNS)])
    return rows


def sources_section(spec: ExperimentSpec, results: dict[str, dict[str, Any] | None]) -> str:
    """The table per source of z, when some run was judged with more than one (empty otherwise)."""
    rows = [row for run in spec.runs if results.get(run.name) for row in source_rows(run.name, results[run.name])]
    if len(rows) <= sum(1 for r in results.values() if r):
        return ""
    return ("<h2>Samples by source of z</h2>" + _table(["run", "z from", *(h for _, h in SOURCE_COLUMNS)], rows)
            + SOURCE_NOTE)


_SECTIONS = {"beta-sweep": beta_sweep_section, "reference-study": reference_study_section}


def experiment_report_html(spec: ExperimentSpec, out_dir: str | Path) -> str:
    """The report's HTML text (see write_experiment_report)."""
    out = Path(out_dir)
    run_dirs = [out / run.name for run in spec.runs if (out / run.name).is_dir()]
    title = f"Experiment {spec.name}"
    evals = {run.name: read_experiment_eval(out / run.name) for run in spec.runs}    # each run's eval.json, once
    section = _SECTIONS.get(spec.name, lambda s, o, e: "")(spec, out, evals)   # the runs report below says it too
    section += sources_section(spec, {name: e.result for name, e in evals.items()})
    intro = (f"<p>{html.escape(spec.description)}. Base preset <code>{html.escape(spec.base_preset)}</code>, "
             f"{len(spec.runs)} runs ({len(run_dirs)} with a run folder), scale {html.escape(spec.scale)}.</p>")
    if not run_dirs:
        return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"</head><body><h1>{html.escape(title)}</h1>{intro}{section}</body></html>\n")
    text = report_html(run_dirs, title=title)
    marker = "<h2>Runs</h2>"
    at = text.find(marker)
    if at < 0:
        at = text.find("</body>")
    return text[:at] + intro + section + "\n" + text[at:]


def write_experiment_report(spec: ExperimentSpec, out_dir: str | Path) -> Path:
    """Write OUT/report.html (atomically) from the experiment's run folders and eval.json files; returns its path."""
    path = Path(out_dir) / "report.html"
    atomic_write_text(path, experiment_report_html(spec, out_dir))
    return path
