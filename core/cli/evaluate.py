"""`vae-explorer eval CHECKPOINT` (the evaluation table or JSON) and `vae-explorer restore-eval` (the restorers'
benchmark)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from core.cli.common import device_named, fit_sampler, progress_bar, sampler_settings
from core.config import with_overrides
from core.errors import UserError
from core.files import check_writable


# ------------------------------------------------------------------------------------------------ eval
def load_data_of(loaded: Any, data_root: str | None, device: Any) -> Any:
    from core.data.datasets import load_dataset

    if data_root is not None:   # read the data from elsewhere (the evaluation's judge too)
        loaded.config = loaded.config.replace(data=with_overrides(loaded.config.data, data_root=data_root))
    return load_dataset(loaded.config.data, device)


# Precision/recall (diversity.py), sharpness (sharpness.py), the hole score (holes.py) and where the judged samples'
# z came from.
SAMPLE_QUALITY = (("precision", "precision (judge features, k=3)"), ("recall", "recall (judge features, k=3)"),
                  ("sharpness", "sharpness (1 = as sharp as real)"), ("hole_score", "hole score (share of z in holes)"),
                  ("samples_from", "samples: z from"))


def source_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """`--from both|all`: the other sources' sample metrics beside the first's ("density_recall" ...)."""
    rows = []
    prefixes = [k[:-len("_fid_like")] for k in result if k.endswith("_fid_like") and k != "fid_like"]
    for prefix in prefixes:
        for key, label in (("conditional_accuracy", "conditional accuracy"), ("fid_like", "Fréchet score"),
                           *SAMPLE_QUALITY[:4]):
            value = result.get(f"{prefix}_{key}")
            if isinstance(value, float):
                text = f"{100 * value:.2f}%" if key == "conditional_accuracy" else f"{value:.4f}"
                rows.append((f"{label}, z from {prefix}", text))
    return rows


def per_class_text(values: Any) -> str | None:
    """'0: 0.98  1: 1.00 ...' of a per-class list (None, a class without a score: '—'); None when not a list."""
    if not isinstance(values, list) or not values:
        return None
    return "  ".join(f"{c}: {v:.2f}" if isinstance(v, (int, float)) else f"{c}: —" for c, v in enumerate(values))


def hole_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    """The hole score per class of each source of z (the first's unprefixed, the others' named by their prefix)."""
    rows = []
    prefixes = [""] + [k[:-len("_fid_like")] + "_" for k in result if k.endswith("_fid_like") and k != "fid_like"]
    for prefix in prefixes:
        text = per_class_text(result.get(f"{prefix}hole_score_per_class"))
        if text is not None:
            source = prefix[:-1] or result.get("samples_from", "prior")
            rows.append((f"hole score per class, z from {source}", text))
    return rows


def check_hole_k(hole_k: int, loaded: Any, dataset: Any | None, split: str) -> None:
    """--hole-k is measured in a VAE's latents (checked without `dataset`), and each class of the split (the whole
    split for an unconditional VAE) needs more than k of them."""
    kind = loaded.model.kind
    if kind != "vae":
        raise UserError(f"--hole-k: the hole score is measured in a VAE's latent space; this checkpoint is a {kind} "
                        "model")
    if dataset is None:
        return
    labels = dataset.split(split).labels.cpu()
    if loaded.model.num_classes == 0:
        labels = labels * 0
    counts = labels.bincount()
    present = counts[counts > 0]
    if len(present) == 0:
        return   # an empty split: evaluate() says so
    smallest = int(present.min())
    if hole_k < smallest:
        return
    what = f"class {int((counts == smallest).nonzero()[0])} of the {split} split has" if loaded.model.num_classes \
        else f"the {split} split has"
    advice = (f"choose --hole-k {smallest - 1} or less" if smallest > 1 else
              "evaluate on a split with more images per class")
    raise UserError(f"--hole-k {hole_k}: {what} only {smallest} images; the hole score needs more than k: {advice}")


def format_eval(result: dict[str, Any]) -> str:
    rows = [("model", f"{result['model_kind']} on {result['dataset']} ({result['split']} split, "
                      f"{result['n_images']} images)")]
    labels = [("elbo", "ELBO (nats/image)"), ("recon", "reconstruction (nats/image)"), ("kl", "KL (nats/image)"),
              ("bits_per_dim", "bits/dim"), ("iwae_nll", f"IWAE NLL, k={result.get('iwae_k')} (nats/image)"),
              ("iwae_bits_per_dim", "IWAE bits/dim"), ("loss", "loss"), ("ssim", "SSIM of reconstructions"),
              ("psnr", "PSNR of reconstructions (dB)"), ("active_units", "active latent units"),
              ("code_grid", "code grid"), ("codebook_perplexity", "codebook perplexity (codes)"),
              ("codebook_usage", "codebook usage"), ("prior_nll", "code prior NLL (nats/image)"),
              ("prior_bits_per_code", "code prior bits/code"),
              ("conditional_accuracy", "conditional accuracy"), ("fid", "FID (Inception-v3)"),
              ("fid_like", "Fréchet score (our classifier's features)"), *SAMPLE_QUALITY,
              ("classifier_test_accuracy", "judge's test accuracy")]
    for key, label in labels:
        if key not in result:
            continue
        v = result[key]
        if key == "active_units":
            text = f"{v} / {result.get('latent_dim')}"
        elif key == "codebook_usage":
            text = f"{100 * v:.1f}% ({result.get('codebook_used')} of {result.get('codebook_size')})"
        elif key == "prior_bits_per_code":
            text = f"{v:.4f} (uniform: {result.get('uniform_bits_per_code'):.4f})"
        elif key in ("ssim", "psnr"):
            text = f"{v:.4f} ± {result[key + '_std']:.4f}"
        elif isinstance(v, str):
            text = v
        elif v is None:
            text = "—"
        elif key in ("conditional_accuracy", "classifier_test_accuracy"):
            text = f"{100 * v:.2f}%"
        else:
            text = f"{v:.4f}"
        rows.append((label, text))
    rows += source_rows(result)
    rows += hole_rows(result)
    width = max(len(r[0]) for r in rows)
    lines = [f"{label:<{width}}  {text}" for label, text in rows]
    lines += [f"note: {result[k]}" for k in ("bits_per_dim_note", "code_prior_note", "fid_like_note", "fid_note",
                                             "hole_score_note",
                                             "latent_density", "latent_diffusion_prior") if k in result]
    return "\n".join(lines)


def eval_command(args: argparse.Namespace) -> int:
    from core.latent.samplers import SAMPLERS
    from core.training.checkpoint import load_model

    device = device_named(args.device)
    sources = {"both": ["prior", "density"], "all": list(SAMPLERS)}.get(args.source, [args.source])
    settings = sampler_settings(args, sources)
    loaded = load_model(args.checkpoint, device)
    if args.hole_k is not None:   # before any download or data read
        check_hole_k(args.hole_k, loaded, None, args.split)
    lock = save_lock(args.checkpoint) if args.save else None   # before any work: a refused --save costs nothing
    try:
        return _eval_and_print(args, loaded, device, sources, settings, lock)
    finally:
        if lock is not None:
            lock.release()


def save_lock(checkpoint: str) -> Any:
    """`--save`: the lock of the checkpoint's run folder (RUN/checkpoints/NAME.safetensors), held while the
    evaluation runs (one writer per run folder); one UserError when there is no run folder or another process writes
    it."""
    from core.files import printable, run_folder_holding
    from core.training.run_folder import RunFolderBusy, acquire_run_folder

    run_dir = run_folder_holding(checkpoint)
    if run_dir is None:
        raise UserError(printable(f"--save keeps the evaluation in the checkpoint's run folder, and {checkpoint} is "
                                  "not in one (RUN/checkpoints/NAME.safetensors beside RUN/metrics.jsonl): leave out "
                                  "--save, or keep the numbers with --json > FILE"))
    try:
        return acquire_run_folder(run_dir, resume=True, command=f"vae-explorer eval --save {Path(checkpoint).name}")
    except RunFolderBusy as e:
        who = e.holder.describe() if e.holder is not None else "another process"
        raise UserError(printable(f"--save: the run folder {run_dir} is being written by {who}; evaluate again "
                                  "when it has ended, or leave out --save")) from None


def eval_settings_of(args: argparse.Namespace, loaded: Any, sources: list[str],
                     settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """What made this evaluation (JSON-ready): its saved file's name is a digest of it."""
    from dataclasses import asdict, is_dataclass

    def plain(value: Any) -> Any:
        return asdict(value) if is_dataclass(value) and not isinstance(value, type) else str(value)

    chosen = {"checkpoint": Path(args.checkpoint).name, "step": loaded.step, "split": args.split, "from": sources,
              "sampler_settings": settings, "iwae_k": args.iwae_k, "samples_per_class": args.samples_per_class,
              "seed": args.seed, "fid": args.fid, "hole_k": args.hole_k, "data_root": args.data_root}
    return json.loads(json.dumps(chosen, default=plain))


def _eval_and_print(args: argparse.Namespace, loaded: Any, device: Any, sources: list[str],
                    settings: dict[str, dict[str, Any]], lock: Any) -> int:
    from core.evaluation.evaluate import evaluate
    from core.latent.samplers import latent_samplers, source_notes

    if args.fid == "fetch":   # after the checkpoint is known to load: no 92 MB download for a typo
        from core.evaluation.inception import fetch_inception_weights

        fetch_inception_weights()
    dataset = load_data_of(loaded, args.data_root, device)
    if args.hole_k is not None:
        check_hole_k(args.hole_k, loaded, dataset, args.split)
    fitted = {name: fit_sampler(name, loaded, dataset, args.quiet, **settings[name]) for name in sources
              if name != "prior"}
    samplers = latent_samplers(sources, fitted)
    bar, update = progress_bar("evaluating", args.quiet)
    try:
        result = evaluate(loaded, dataset, args.split, progress=update, iwae_k=args.iwae_k,
                          n_per_class=args.samples_per_class, seed=args.seed,
                          fid="inception" if args.fid == "fetch" else args.fid, latent_samplers=samplers,
                          **({"hole_k": args.hole_k} if args.hole_k is not None else {}))
    finally:
        bar.close()
    if result is not None:
        result.update(source_notes(fitted))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(format_eval(result))
    if lock is not None and result is not None:
        from core.runs.evaluation import save_eval

        path = save_eval(lock.folder, result, args.checkpoint, eval_settings_of(args, loaded, sources, settings))
        print(f"saved {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


# ------------------------------------------------------------------------------------------------ restore-eval
def restore_eval_command(args: argparse.Namespace) -> int:
    from core.restoration import benchmark
    from core.restoration.corruptions import CORRUPTIONS, STRENGTHS, check_strength
    from core.training.checkpoint import load_model

    if not args.vae and not args.diffusion:
        raise UserError("give --vae CHECKPOINT and/or --diffusion CHECKPOINT")
    if args.out and Path(args.out).suffix.lower() not in (".csv", ".json"):
        raise UserError(f"--out must end in .csv or .json, not {args.out}")
    if args.out:
        check_writable(Path(args.out).parent, f"--out {args.out}")
    corruptions = args.corruptions if args.corruptions is not None else list(CORRUPTIONS)
    if not corruptions:
        raise UserError(f"--corruptions is empty; name one or more of: {', '.join(CORRUPTIONS)}")
    for name in corruptions:
        for strength in args.strengths or [STRENGTHS[name][0] if name in STRENGTHS else 0.0]:
            check_strength(name, strength)       # an unknown name or a strength out of range: before any work
    device = device_named(args.device)
    vae = load_model(args.vae, device) if args.vae else None
    diffusion = load_model(args.diffusion, device) if args.diffusion else None
    if vae is not None and vae.model.kind != "vae":
        raise UserError(f"--vae {args.vae} holds a {vae.model.kind} model, not a VAE")
    if diffusion is not None and diffusion.model.kind != "diffusion":
        raise UserError(f"--diffusion {args.diffusion} holds a {diffusion.model.kind} model, not a diffusion model")
    first = vae or diffusion
    if vae is not None and diffusion is not None:
        a, b = vae.meta, diffusion.meta
        if (a.name, a.class_names, a.channels, a.image_size) != (b.name, b.class_names, b.channels, b.image_size):
            raise UserError(f"the VAE was trained on {a.name} ({a.channels}x{a.image_size}px) and the diffusion model "
                            f"on {b.name} ({b.channels}x{b.image_size}px); give two models of the same data")
    dataset = load_data_of(first, args.data_root, device)
    bar, update = progress_bar("restoring", args.quiet)
    try:
        rows = benchmark.batch_evaluate(vae and vae.model, diffusion and diffusion.model, dataset,
                                        corruptions=corruptions, strengths=args.strengths,
                                      n_images=args.n, seed=args.seed, progress=update)
    finally:
        bar.close()
    print(benchmark.format_table(rows))
    if args.out:
        writer = benchmark.write_json if args.out.lower().endswith(".json") else benchmark.write_csv
        print(f"wrote {writer(rows, args.out)}")
    return 0


