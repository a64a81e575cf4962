"""The dashboard's plots reflow into two columns when three would cut off their titles and axis labels (a 1024-px
window with the Models dock open leaves them about 430 px), and back to three when there is room, or when two
columns would make the rows too short."""

from __future__ import annotations

from explorer.widgets.training_plots import TILE_MIN_HEIGHT, TILE_MIN_WIDTH, TrainingPlots


def rows_of(plots: TrainingPlots) -> list[list[str]]:
    """The tiles' titles grouped by the row they are drawn on, left to right."""
    names = {id(plots.kl_bars): "kl_bars", id(plots.previews): "previews"}
    names.update({id(p): key for key, p in plots.plots.items()})
    by_y: dict[int, list] = {}
    for tile in plots.tiles():
        assert tile.isVisible()
        by_y.setdefault(tile.geometry().y(), []).append(tile)
    return [[names[id(t)] for t in sorted(row, key=lambda t: t.geometry().x())] for _, row in sorted(by_y.items())]


def test_narrow_plots_take_two_columns_and_wide_ones_three(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(430, 470)
    plots.show()
    qtbot.waitUntil(lambda: rows_of(plots) == [["loss", "terms"], ["val", "kl_bars"], ["lr", "previews"]])
    assert all(tile.width() >= TILE_MIN_WIDTH for tile in plots.tiles())
    assert all(tile.height() >= TILE_MIN_HEIGHT for tile in plots.tiles())

    plots.resize(900, 470)
    qtbot.waitUntil(lambda: rows_of(plots) == [["loss", "terms", "val"], ["kl_bars", "lr", "previews"]])


def test_a_vae_gans_extra_plots_keep_three_columns_where_two_would_be_too_short(qtbot):
    plots = TrainingPlots()
    qtbot.addWidget(plots)
    plots.resize(430, 470)
    plots.show()
    qtbot.waitUntil(lambda: plots.columns == 2)
    plots.show_row_3({"adversarial", "adv_weight", "perceptual"})   # 9 tiles: 5 rows of 2 would be 94 px tall
    qtbot.waitUntil(lambda: rows_of(plots)[2:] == [["adversarial", "adv_weight", "perceptual"]])
    assert plots.columns == 3
    plots.show_row_3({"kl_layers"})   # a hierarchical VAE: 7 tiles, 4 rows of 2 are still 117 px: three columns
    qtbot.waitUntil(lambda: rows_of(plots)[2:] == [["kl_layers"]])
    plots.resize(430, 4 * TILE_MIN_HEIGHT + 10)   # tall enough for 4 rows of 2
    qtbot.waitUntil(lambda: rows_of(plots)[2:] == [["lr", "previews"], ["kl_layers"]])
