"""The widget gallery: every example opens standalone on its synthetic data and draws something (not a blank
window); the gallery window switches between them; `--shot` saves a PNG; a wrong name is one line, exit 2."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QVBoxLayout, QWidget

from explorer import gallery


def pixels(image: QImage) -> np.ndarray:
    image = image.convertToFormat(QImage.Format.Format_RGB32)
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return arr[:, : image.width() * 4].reshape(image.height(), image.width(), 4)[..., :3].copy()


def framed(qtbot, widget: QWidget) -> QWidget:
    """The example inside a plain window (closing a bare pyqtgraph PlotWidget twice fails in pyqtgraph)."""
    frame = QWidget()
    QVBoxLayout(frame).addWidget(widget)
    qtbot.addWidget(frame)
    return frame


def drawn_share(image: QImage) -> tuple[float, int]:
    """(share of pixels unlike the most common colour, number of distinct colours)."""
    rgb = pixels(image).reshape(-1, 3)
    colours, counts = np.unique(rgb, axis=0, return_counts=True)
    return 1.0 - counts.max() / len(rgb), len(colours)


@pytest.mark.parametrize("name", list(gallery.EXAMPLES))
def test_each_example_draws_on_its_synthetic_data(qtbot, name):
    example = gallery.EXAMPLES[name]
    widget = example.build()
    frame = framed(qtbot, widget)
    frame.resize(820, 580)
    frame.show()
    qtbot.waitExposed(widget)
    qtbot.wait(example.settle_ms)
    image = widget.grab().toImage()
    gallery.stop_feeds(widget)
    assert image.width() > 700 and image.height() > 450
    share, colours = drawn_share(image)
    assert share > 0.05 and colours > 50, f"{name}: {share:.1%} of the pixels drawn, {colours} colours"


def test_live_examples_keep_drawing_from_their_feed(qtbot):
    widget = gallery.live_plot_example()
    frame = framed(qtbot, widget)
    frame.show()
    before = len(widget.series["loss"].xs)
    first = pixels(widget.grab().toImage())
    qtbot.wait(400)
    second = pixels(widget.grab().toImage())
    gallery.stop_feeds(widget)
    assert (first != second).any(), "the live plot did not change while its feed ran"
    assert len(widget.series["loss"].xs) > before


def test_the_gallery_window_switches_examples_and_the_shot_option(qtbot, tmp_path, capsys):
    window = gallery.Gallery("image-grid")
    qtbot.addWidget(window)
    window.show()
    assert window.names.count() == len(gallery.EXAMPLES)
    assert type(window.current).__name__ == "ImageGrid" and "(image-grid)" in window.description.text()
    window.names.setCurrentRow(list(gallery.EXAMPLES).index("dashboard"))
    assert type(window.current).__name__ == "RunDashboard"
    qtbot.wait(100)
    window.close()

    out = tmp_path / "grid.png"
    assert gallery.main(["--shot", "image-grid", str(out)]) == 0
    image = QImage(str(out))
    assert not image.isNull() and drawn_share(image)[0] > 0.05
    assert gallery.main(["--shot", "nothing", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["gallery: error: unknown example 'nothing'; choose one of: "
                                        + ", ".join(gallery.EXAMPLES)]
