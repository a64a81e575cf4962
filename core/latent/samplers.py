"""Where a VAE's z comes from: one interface for every sampler, one registry (pythae's samplers are the model).

A sampler is built with its settings, fitted to a model and its data with `fit(loaded, dataset)` (long work with
`progress` / `should_stop`; returns None when stopped), then draws `sample(labels, generator, temperature=...)` ->
z (B, latent_dim) on the CPU, which `model.sample(labels, z=z)`, the sampler grid and `evaluate`'s latent samplers
decode. `describe()` says what was fitted.

    prior            N(0, T^2 I), the VAE's own prior (nothing to fit)
    density          a Gaussian mixture per class fitted to the encoded training set (density.py)
    diffusion-prior  a class-conditional diffusion model fitted to the encoded training set (diffusion_prior.py)
    region           a Gaussian mixture fitted to chosen images, "more like these" (`--near`; not a `--from` name)

`SAMPLERS` maps the `--from` names to their classes; the CLI's choices and help read it. This module imports neither
torch nor scikit-learn until a sampler is fitted: `vae-explorer --help` reads the registry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from core.errors import UserError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from core.latent.encoding import Progress, ShouldStop
    from core.training.checkpoint import LoadedModel


class LatentSampler(Protocol):
    """What every sampler offers (see the module docstring)."""

    name: ClassVar[str]
    summary: ClassVar[str]

    def fit(self, loaded: LoadedModel, dataset: Any, *, progress: Progress | None = None,
            should_stop: ShouldStop | None = None) -> LatentSampler | None: ...

    def sample(self, labels: torch.Tensor | np.ndarray, generator: torch.Generator | None = None, *,
               temperature: float = 1.0) -> torch.Tensor: ...

    def describe(self) -> str: ...


def _check_vae(loaded: LoadedModel, name: str) -> None:
    if loaded.model.kind != "vae":
        raise UserError(f"--from {name} samples a VAE's latents; this checkpoint is a {loaded.model.kind} model "
                        "(use --from prior)")


def _not_fitted(name: str) -> UserError:
    return UserError(f"the {name} sampler has not been fitted to a model yet")


@dataclass
class PriorSampler:
    """z ~ N(0, T^2 I): the VAE's prior."""

    name: ClassVar[str] = "prior"
    summary: ClassVar[str] = "the VAE's prior N(0, I)"
    latent_dim: int = 0

    def fit(self, loaded: LoadedModel, dataset: Any = None, *, progress: Progress | None = None,
            should_stop: ShouldStop | None = None) -> PriorSampler:
        _check_vae(loaded, self.name)
        self.latent_dim = int(loaded.model.latent_dim)
        return self

    def sample(self, labels, generator=None, *, temperature: float = 1.0):
        import torch

        if not self.latent_dim:
            raise _not_fitted(self.name)
        return torch.randn(len(labels), self.latent_dim, generator=generator) * float(temperature)

    def describe(self) -> str:
        return "the prior N(0, I)"


@dataclass
class MixtureSampler:
    """A per-class Gaussian mixture of the encoded training set (core/latent/density.py)."""

    name: ClassVar[str] = "density"
    summary: ClassVar[str] = "a Gaussian mixture per class fitted to the encoded training set"
    components: int | None = None
    covariance: str | None = None
    top_layer: bool = False
    seed: int = 0
    density: Any = field(default=None, repr=False)

    def fit(self, loaded: LoadedModel, dataset: Any, *, progress: Progress | None = None,
            should_stop: ShouldStop | None = None) -> MixtureSampler | None:
        from core.latent.density import DEFAULT_COMPONENTS, DEFAULT_COVARIANCE, fit_density

        _check_vae(loaded, self.name)
        self.density = fit_density(loaded.model, dataset.train, components=self.components or DEFAULT_COMPONENTS,
                                   covariance=self.covariance or DEFAULT_COVARIANCE, seed=self.seed,
                                   progress=progress, should_stop=should_stop, loaded=loaded,
                                   top_layer=self.top_layer)
        return None if self.density is None else self

    def sample(self, labels, generator=None, *, temperature: float = 1.0):
        if self.density is None:
            raise _not_fitted(self.name)
        return self.density.sample(labels, generator, temperature=temperature)

    def describe(self) -> str:
        return self.density.describe() if self.density is not None else self.summary


@dataclass
class RegionSampler:
    """A Gaussian mixture fitted to chosen images (split names and indices), shared by every class."""

    name: ClassVar[str] = "region"
    summary: ClassVar[str] = "a Gaussian mixture fitted to chosen images"
    splits: Any = ()
    indices: Any = ()
    origin: str = "the chosen images"
    seed: int = 0
    density: Any = field(default=None, repr=False)

    def fit(self, loaded: LoadedModel, dataset: Any, *, progress: Progress | None = None,
            should_stop: ShouldStop | None = None) -> RegionSampler | None:
        from core.latent.density import fit_region_of_images

        if loaded.model.kind != "vae":
            raise UserError(f"--near samples a VAE's latents; this checkpoint is a {loaded.model.kind} model")
        self.density = fit_region_of_images(loaded.model, dataset, self.splits, self.indices, origin=self.origin,
                                            seed=self.seed, should_stop=should_stop)
        return None if self.density is None else self

    sample = MixtureSampler.sample
    describe = MixtureSampler.describe


@dataclass
class DiffusionPriorSampler:
    """A class-conditional diffusion model over the encoded training set (core/latent/diffusion_prior.py).

    `prior_file`: where the fit is kept: read when it exists (it must be this model's), else fitted and written."""

    name: ClassVar[str] = "diffusion-prior"
    summary: ClassVar[str] = "a class-conditional diffusion model fitted to the encoded training set"
    settings: Any = None               # DiffusionPriorSettings; None: the defaults
    prior_file: str | None = None
    prior: Any = field(default=None, repr=False)

    def fit(self, loaded: LoadedModel, dataset: Any, *, progress: Progress | None = None,
            should_stop: ShouldStop | None = None) -> DiffusionPriorSampler | None:
        from pathlib import Path

        from core.latent import diffusion_prior as dp
        from core.latent.map_data import encoding_key

        _check_vae(loaded, self.name)
        settings = self.settings or dp.DiffusionPriorSettings()
        if self.prior_file is not None and Path(self.prior_file).exists():
            prior = dp.read_prior(self.prior_file, expect_key=encoding_key(loaded))
            if prior.latent_dim != loaded.model.latent_dim:
                raise UserError(f"the diffusion prior {self.prior_file} covers {prior.latent_dim} latent dimensions, "
                                f"the model has {loaded.model.latent_dim}")
            self.prior = prior.sampled_as(settings)
        else:
            self.prior = dp.fit_diffusion_prior(loaded.model, dataset.train, settings=settings, loaded=loaded,
                                                progress=progress, should_stop=should_stop)
            if self.prior is not None and self.prior_file is not None:
                dp.save_prior(self.prior, self.prior_file)
        if self.prior is not None and self.prior.settings.match_spread:
            self.prior.spread_match()          # estimated here (a worker, the CLI's progress) rather than at sampling
        return None if self.prior is None else self

    def sample(self, labels, generator=None, *, temperature: float = 1.0):
        if self.prior is None:
            raise _not_fitted(self.name)
        return self.prior.sample(labels, generator, temperature=temperature)

    def describe(self) -> str:
        return self.prior.describe() if self.prior is not None else self.summary


# The `--from` names, in the order the CLI lists them.
SAMPLERS: dict[str, type] = {cls.name: cls for cls in (PriorSampler, MixtureSampler, DiffusionPriorSampler)}


def make_sampler(name: str, **settings: Any) -> LatentSampler:
    """The sampler registered under `name`, built with `settings` (its dataclass fields); UserError for an unknown
    name or a setting that sampler does not take."""
    from dataclasses import fields

    cls = SAMPLERS.get(name)
    if cls is None:
        raise UserError(f"unknown source of z {name!r}; choose one of: {', '.join(SAMPLERS)}")
    known = {f.name for f in fields(cls)}
    wrong = sorted(k for k in settings if k not in known)
    if wrong:
        raise UserError(f"--from {name} does not take {', '.join(wrong)}")
    return cls(**settings)


def fit_sources(sources: list[str] | tuple[str, ...], loaded: LoadedModel, dataset: Any, *,
                settings: dict[str, dict[str, Any]] | None = None, should_stop: ShouldStop | None = None,
                progress_for: Any = None) -> dict[str, LatentSampler] | None:
    """Each named source of z but the prior (nothing to fit) built with its `settings` and fitted to `loaded` and its
    training split, in order; None when stopped. `progress_for(name)`: that fit's `progress` callable (or None)."""
    fitted: dict[str, LatentSampler] = {}
    for name in sources:
        if name == "prior":
            continue
        sampler = make_sampler(name, **(settings or {}).get(name, {}))
        done = sampler.fit(loaded, dataset, progress=progress_for(name) if progress_for else None,
                           should_stop=should_stop)
        if done is None:
            return None
        fitted[name] = done
    return fitted


def latent_samplers(sources: list[str] | tuple[str, ...], fitted: dict[str, LatentSampler]) -> dict[str, Any]:
    """`evaluate()`'s `latent_samplers`: each source's draw in order, None for the prior (drawn as `model.sample`
    draws it, so its images are those of a plain evaluation)."""
    return {name: fitted[name].sample if name in fitted else None for name in sources}


def source_notes(fitted: dict[str, LatentSampler]) -> dict[str, str]:
    """What each fitted source is, keyed as evaluations keep it ("latent_density": the key reports read since it was
    the only one; "latent_diffusion_prior" ...)."""
    return {"latent_density" if name == "density" else f"latent_{name.replace('-', '_')}": sampler.describe()
            for name, sampler in fitted.items()}


def parse_sources(text: str, flag: str = "--from") -> tuple[str, ...]:
    """The sources of z an experiment judges: a comma-separated list of `--from` names ("all": every one), in
    registry order, the prior always first (its numbers are the tables' main columns); UserError for an unknown
    name or an empty list."""
    names = [s.strip() for s in str(text).split(",") if s.strip()]
    if names == ["all"]:
        return tuple(SAMPLERS)
    wrong = [n for n in names if n not in SAMPLERS]
    if wrong or not names:
        hint = " (the per-class mixture is 'density')" if "mixture" in wrong else ""
        raise UserError(f"{flag} {text!r}: " + (f"unknown source of z {wrong[0]!r}{hint}; " if wrong else "")
                        + f"give one or more of {', '.join(SAMPLERS)} separated by commas, or all")
    return tuple(n for n in SAMPLERS if n in names or n == "prior")
