"""The helpers every package shares, each written once: images (uint8 <-> float, grids), atomic writes, class-name
matching and run-folder naming."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from core.config import Config, DataConfig
from core.data.datasets import match_class
from core.errors import UserError
from core.files import atomic_write, atomic_write_text
from core.images import as_float, image_grid, to_uint8
from core.training.run_folder import new_run_dir


def test_uint8_round_trip_and_layouts():
    x8 = torch.randint(0, 256, (3, 2, 5, 4), dtype=torch.uint8)
    back = to_uint8(as_float(x8))
    assert back.dtype == np.uint8 and back.shape == (3, 5, 4, 2)          # channels last
    assert np.array_equal(back, x8.permute(0, 2, 3, 1).numpy())
    one = to_uint8(as_float(x8)[0].numpy())                                 # a single numpy image (C, H, W)
    assert one.shape == (5, 4, 2) and np.array_equal(one, back[0])
    assert to_uint8(torch.tensor([[[-0.5, 1.7]]])).reshape(-1).tolist() == [0, 255]   # clamped
    with pytest.raises(TypeError):
        as_float(torch.zeros(1, 1, 2, 2))


def test_image_grid_places_cells_row_major_with_padding():
    imgs = np.stack([np.full((2, 3, 1), 10 * (i + 1), np.uint8) for i in range(5)])
    grid = image_grid(imgs, 3)
    assert grid.shape == (4, 9, 1)                          # 2 rows x 3 columns, the last row padded
    assert grid[0, 0, 0] == 10 and grid[0, 3, 0] == 20 and grid[2, 0, 0] == 40 and grid[2, 6, 0] == 0
    padded = image_grid(imgs, 3, padding=1, pad_value=255)
    assert padded.shape == (2 * 3 + 1, 3 * 4 + 1, 1) and padded[0, 0, 0] == 255 and padded[1, 1, 0] == 10
    inner = image_grid(imgs, 3, padding=1, outer_border=False)
    assert inner.shape == (2 * 3 - 1, 3 * 4 - 1, 1) and inner[0, 0, 0] == 10
    assert image_grid(imgs[:1], 1, padding=2).shape == (6, 7, 1)   # a single image is padded too
    assert image_grid(np.zeros((2, 2, 2, 3), np.uint8), 2, scale=3).shape == (6, 12, 3)


@pytest.mark.parametrize(("n", "columns", "padding", "channels"),
                         [(7, 3, 0, 1), (7, 3, 2, 3), (5, 8, 1, 3), (12, 4, 1, 1), (2, 1, 3, 3)])
def test_image_grid_lays_cells_out_as_torchvision_make_grid_does(n, columns, padding, channels):
    """image_grid is our own numpy code (torchvision's import cost 164 MiB at launch): same layout as make_grid."""
    from torchvision.utils import make_grid

    imgs = np.random.default_rng(n).integers(0, 256, (n, 5, 6, channels), dtype=np.uint8)
    ref = make_grid(torch.from_numpy(imgs).permute(0, 3, 1, 2), nrow=columns, padding=padding, pad_value=77)
    assert np.array_equal(image_grid(imgs, columns, padding=padding, pad_value=77),
                          ref[:channels].permute(1, 2, 0).numpy())
    with pytest.raises(ValueError, match="N > 0"):
        image_grid(imgs[:0], columns)


def test_atomic_write_replaces_whole_files_and_leaves_nothing_behind_on_failure(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_text(target, "old")
    assert target.read_text() == "old"

    def fails(tmp):
        tmp.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        atomic_write(target, fails)
    assert target.read_text() == "old"                      # the old file is untouched
    assert os.listdir(tmp_path) == ["a.json"]               # and no temporary file is left
    atomic_write_text(target, "new")
    assert target.read_text() == "new"


def test_class_names_match_in_any_case_names_before_indices():
    names = ("airplane", "automobile", "3", "cat")
    assert match_class("Airplane", names) == 0
    assert match_class(" CAT ", names) == 3
    assert match_class("3", names) == 2                      # the name "3" wins over index 3
    assert match_class("1", names) == 1
    with pytest.raises(UserError, match="airplane, automobile"):
        match_class("horse", names)


def test_new_run_dir_names_runs_one_way(tmp_path):
    cfg = Config(data=DataConfig(name="folder:/data/My Photos"))
    first = new_run_dir(cfg, tmp_path)
    assert first.parent == tmp_path and first.name.endswith("-folder-My-Photos-vae")
    first.mkdir()
    second = new_run_dir(cfg, tmp_path)
    if second.name[:15] == first.name[:15]:                  # the same second: a numbered sibling
        assert second.name == first.name + "-2"
    assert not second.exists()
