"""`vae-explorer sample CHECKPOINT`: class-conditional samples as a PNG grid, one row per class."""

from __future__ import annotations

import argparse
from pathlib import Path

from core.cli.common import device_named, fit_sampler, sampler_settings
from core.data.datasets import match_class
from core.errors import UserError
from core.files import check_writable
from core.images import image_grid, save_png, to_uint8
from core.models.protocol import is_vqvae


def sample_command(args: argparse.Namespace) -> int:
    import torch

    from core.training.checkpoint import load_model

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise UserError(f"--out must be a .png file, not {out}")
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'samples.png'}")
    check_writable(out.parent, f"--out {out}")
    device = device_named(args.device)
    settings = sampler_settings(args, [args.source])[args.source]
    near = None
    if args.near is not None:
        if args.source != "prior":
            raise UserError(f"--near and --from {args.source} are two sources of z; choose one")
        from core.latent.map_data import read_selection_csv

        near = read_selection_csv(args.near)     # before loading anything: a bad file is reported at once
    loaded = load_model(args.checkpoint, device)
    model, meta = loaded.model, loaded.meta
    conditional = model.num_classes > 0
    if args.classes is not None and not args.classes:
        raise UserError("--classes is empty; give class names or indices separated by commas")
    if args.classes is not None:
        classes = [match_class(c, meta.class_names) for c in args.classes] if conditional else [0]
    elif near is not None and conditional and (near[2] >= 0).any():
        _check_near_labels(near[2], model.num_classes, args.near)
        classes = sorted({int(c) for c in near[2] if 0 <= c < model.num_classes})   # the selection's classes
    else:
        classes = list(range(model.num_classes)) if conditional else [0]
    labels = torch.tensor(classes).repeat_interleave(args.n)
    gen = torch.Generator().manual_seed(args.seed)
    kw = _sample_options(args, model)
    sampler = None
    if model.kind == "vae" and (args.source != "prior" or near is not None):
        from core.data.datasets import load_dataset

        dataset = load_dataset(loaded.config.data, device)
        if near is not None:
            from core.latent.samplers import RegionSampler

            sampler = RegionSampler(near[0], near[1], origin=f"the {len(near[1])} images listed in {args.near}")
            sampler.fit(loaded, dataset)
        else:
            sampler = fit_sampler(args.source, loaded, dataset, False, **settings)
        kw["z"] = sampler.sample(labels, gen, temperature=kw.pop("temperature"))
    elif near is not None:
        raise UserError(f"--near samples a VAE's latents; this checkpoint is a {model.kind} model")
    with torch.no_grad():
        images = model.sample(labels, generator=gen, **kw)
    save_png(image_grid(to_uint8(images), args.n), str(out), scale=args.scale)
    names = ", ".join(meta.class_names[c] for c in classes) if conditional else "unconditional"
    source = f"; z from {sampler.describe()}" if sampler is not None else ""
    source = f"; {model.grid}x{model.grid} code grids drawn from the code prior" if is_vqvae(model) else source
    print(f"wrote {out} ({len(classes)} rows x {args.n} samples; rows: {names}{source})")
    return 0


def _check_near_labels(labels, num_classes: int, path: str) -> None:
    """A --near CSV's labels name classes of this model (-1: none given); one line naming the first that does not."""
    beyond = [i for i, label in enumerate(labels.tolist()) if label >= num_classes]
    if beyond:   # rows are lines 2, 3, ... (the header is line 1)
        raise UserError(f"{path}, line {beyond[0] + 2}: label {labels[beyond[0]]} is not a class of this model (0 to "
                        f"{num_classes - 1})")


def _sample_options(args: argparse.Namespace, model) -> dict:
    """model.sample's options from the flags that fit the model's kind; one line for a flag that does not."""
    if is_vqvae(model):
        return _vqvae_options(args, model)
    if model.kind == "diffusion":
        if args.source != "prior":
            raise UserError(f"--from {args.source} samples a VAE's latents; this checkpoint is a diffusion model")
        if args.temperature is not None:
            raise UserError("--temperature applies to VAEs; for this diffusion model use --guidance, --steps or "
                            "--sampler")
        return {"steps": args.steps, "guidance": args.guidance, "sampler": args.sampler}
    if args.sampler is not None or (args.source != "diffusion-prior" and (args.steps is not None
                                                                          or args.guidance is not None)):
        raise UserError("--steps, --guidance and --sampler apply to diffusion models (--steps and --guidance also "
                        "to --from diffusion-prior); this checkpoint is a VAE")
    return {"temperature": 1.0 if args.temperature is None else args.temperature}


def _vqvae_options(args: argparse.Namespace, model) -> dict:
    """sample's options for a VQ-VAE: its codes come from its own code prior (--from prior) at --temperature."""
    if args.source != "prior" or args.near is not None:
        what = "--near" if args.near is not None else f"--from {args.source}"
        raise UserError(f"{what} samples a VAE's latents; a VQ-VAE draws its codes from its code prior (--from prior)")
    if args.sampler is not None or args.steps is not None or args.guidance is not None:
        raise UserError("--steps, --guidance and --sampler apply to diffusion models; a VQ-VAE takes --temperature")
    if not model.has_prior:
        raise UserError(f"{args.checkpoint} is a VQ-VAE without a code prior; train its prior first: "
                        f"vae-explorer train --prior-of {args.checkpoint}")
    return {"temperature": args.temperature}   # None: the model's own sample_temperature
