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
    train = with_overrides(TrainConfig(), epochs="7", lr="0.01", amp="false")
    assert (train.epochs, train.lr, train.amp) == (7, 0.01, False)
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
