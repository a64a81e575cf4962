"""Experiments are checked before their first run: every built-in experiment makes valid configurations for every
dataset preset and scale (each quick model is built), and a missing image folder is one line before anything starts."""

from __future__ import annotations

import pytest

from core import cli
from core.data.datasets import DatasetMeta
from core.experiments.spec import EXPERIMENTS, SCALES, experiment
from core.models import build_model

DATASETS = {"digits": (1, 8), "mnist": (1, 28), "fashion-mnist": (1, 28), "cifar10": (3, 32)}


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("scale", SCALES)
def test_every_experiment_makes_valid_configs_for_every_dataset_and_scale(name, dataset, scale):
    spec = experiment(name, dataset, scale)
    configs = spec.configs()
    spec.check_data()
    assert len(configs) == len(spec.runs)
    if scale == "quick":   # small models: each is built, as the run will build it
        channels, size = DATASETS[dataset]
        for cfg in configs.values():
            classes = tuple(str(i) for i in range(10))
            model = build_model(cfg.model, DatasetMeta(dataset, classes, channels, cfg.data.image_size or size))
            assert sum(p.numel() for p in model.parameters()) > 0


def test_a_missing_image_folder_is_one_line_before_anything_starts(tmp_path, capsys):
    out = tmp_path / "experiment"
    code = cli.main(["experiment", "beta-sweep", "--dataset", f"folder:{tmp_path / 'nope'}", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope does not exist" in err
    assert not out.exists()
