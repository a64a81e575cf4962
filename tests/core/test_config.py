"""Configuration: JSON round trips, unknown keys refused, bounds checked, presets valid."""

import json

import pytest

from core.config import PRESETS, Config, DataConfig, DiffusionConfig, TrainConfig, VAEConfig, preset, with_overrides
from core.errors import UserError


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_round_trips_through_json(name):
    config = PRESETS[name]
    again = Config.from_json(config.to_json())
    assert again == config
    assert again.model_kind == config.model.kind


def test_reference_study_preset_matches_the_study():
    study = preset("cifar10-seed2")
    assert (study.data.name, study.train.batch_size, study.train.epochs, study.train.lr) == ("cifar10", 46, 200, 1e-3)
    assert study.model.likelihood == "bernoulli" and study.model.residual is False


def test_unknown_keys_are_an_error_not_ignored():
    d = Config().to_dict()
    d["train"]["epochz"] = 3
    with pytest.raises(UserError, match="epochz"):
        Config.from_dict(d)
    with pytest.raises(UserError, match="unknown config option"):
        Config.from_dict({**Config().to_dict(), "extra": {}})


def test_unknown_model_kind_and_preset_list_the_choices():
    with pytest.raises(UserError, match="vae, diffusion"):
        Config.from_dict({"model": {"kind": "gan"}})
    with pytest.raises(UserError, match="digits"):
        preset("nope")


def test_model_kind_selects_the_model_config():
    config = Config.from_dict({"model": {"kind": "diffusion", "timesteps": 100}})
    assert isinstance(config.model, DiffusionConfig) and config.model.timesteps == 100


@pytest.mark.parametrize("make", [
    lambda: TrainConfig(batch_size=0),
    lambda: TrainConfig(lr=float("nan")),
    lambda: VAEConfig(likelihood="poisson"),
    lambda: DataConfig(channels=2),
    lambda: DataConfig(val_fraction=0.9),
])
def test_out_of_range_values_are_refused_with_the_field_name(make):
    with pytest.raises(UserError) as err:
        make()
    assert "." in str(err.value)  # names Owner.field


def test_overrides_convert_strings_like_a_command_line():
    train = with_overrides(TrainConfig(), epochs="7", lr="0.01", amp="true", compile="off")
    assert (train.epochs, train.lr, train.amp, train.compile) == (7, 0.01, True, "off")
    data = with_overrides(DataConfig(), classes="airplane, frog")
    assert data.classes == ("airplane", "frog")
    with pytest.raises(UserError, match="TrainConfig.epochs must be int"):
        with_overrides(TrainConfig(), epochs="many")
    with pytest.raises(UserError, match="TrainConfig.epochs must be int"):
        with_overrides(TrainConfig(), epochs=2.5)


def test_invalid_json_is_a_user_error():
    with pytest.raises(UserError, match="not valid JSON"):
        Config.from_json("{nope")
    json.loads(Config().to_json())  # and the real thing is valid JSON


def test_compile_mode_is_cuda_only_and_auto_picks_cuda_graphs_where_safe() -> None:
    import dataclasses

    import torch

    from core.config import DiffusionConfig, preset
    from core.training.trainer import compile_mode

    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    cifar = preset("cifar10")
    assert cifar.train.compile == "auto"
    assert compile_mode(cifar, cpu, distributed=False) is None                  # the CPU never compiles
    assert compile_mode(cifar, cuda, distributed=False) == "reduce-overhead"
    assert compile_mode(cifar, cuda, distributed=True) is None                  # DDP: eager
    assert compile_mode(preset("digits-vaegan"), cuda, distributed=False) is None   # a discriminator: eager
    warm = dataclasses.replace(cifar, model=dataclasses.replace(cifar.model, kl_warmup_steps=100))
    assert compile_mode(warm, cuda, distributed=False) is None                  # beta changes with the step
    ddpm = dataclasses.replace(cifar, model=DiffusionConfig())
    assert compile_mode(ddpm, cuda, distributed=False) == "reduce-overhead"
    chosen = dataclasses.replace(warm, train=dataclasses.replace(cifar.train, compile="default"))
    assert compile_mode(chosen, cuda, distributed=True) == "default"            # an explicit choice is kept
    off = dataclasses.replace(cifar, train=dataclasses.replace(cifar.train, compile="off"))
    assert compile_mode(off, cuda, distributed=False) is None
