"""The screenshot tool's gallery part: `--gallery-only` saves every widget gallery example as gallery-NAME.png
(a drawn picture, not a blank one) without opening the main window or loading a model. Run as a user runs it, in its
own process (the examples' closed pyqtgraph widgets are the tool's to drop when it exits)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PySide6.QtGui import QImage

from explorer import gallery

ROOT = Path(__file__).resolve().parents[2]


def test_gallery_only_saves_each_example_as_a_drawn_png(tmp_path):
    out = tmp_path / "shots"
    done = subprocess.run([sys.executable, "-m", "explorer.screenshots", str(out), "--gallery-only"], cwd=ROOT,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert "gallery-scatter.png" in done.stdout
    saved = sorted(p.name for p in out.iterdir())
    assert saved == sorted(f"gallery-{name}.png" for name in gallery.EXAMPLES)
    for name in saved:
        image = QImage(str(out / name)).convertToFormat(QImage.Format.Format_RGB32)
        assert (image.width(), image.height()) == (900, 620)
        arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
        colours = np.unique(arr[:, : image.width() * 4].reshape(-1, 4)[:, :3], axis=0)
        assert len(colours) > 20, f"{name} looks blank ({len(colours)} colours)"
