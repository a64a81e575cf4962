"""The screenshot tool (explorer/screenshots.py), run as a user runs it, in its own process (the examples' closed
pyqtgraph widgets are the tool's to drop when it exits): `--gallery-only` saves every widget gallery example as
gallery-NAME.png (a drawn picture, not a blank one) without opening the main window or loading a model; the window's
shots are made from the panels' parts on the bundled models; and a shot that cannot be made (its panel not in the
window, a part of a panel renamed or gone) is named with the reason and fails the run: nothing is skipped silently."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from explorer import gallery, screenshots

ROOT = Path(__file__).resolve().parents[2]


# The tool with one panel left out of the registry and one part of another panel gone (as when a panel is split and
# the part moves into one of its views): the shots of both must fail, by name.
BROKEN = """
import sys
from explorer import registry
from explorer.panels.sampler.panel import SamplerPanel
from explorer.screenshots import main

registry.PANELS[:] = [entry for entry in registry.PANELS if entry.key != "interpolate"]
del SamplerPanel.is_sampling
sys.exit(main(sys.argv[1:]))
"""


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
                          capture_output=True, text=True, timeout=300)


def _assert_drawn(path: Path, size: tuple[int, int]) -> None:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB32)
    assert (image.width(), image.height()) == size
    arr = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    colours = np.unique(arr[:, : image.width() * 4].reshape(-1, 4)[:, :3], axis=0)
    assert len(colours) > 20, f"{path.name} looks blank ({len(colours)} colours)"


def _grey(path: Path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_Grayscale8)
    rows = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width()].copy()


def test_gallery_only_saves_each_example_as_a_drawn_png(tmp_path):
    out = tmp_path / "shots"
    done = _run("-m", "explorer.screenshots", str(out), "--gallery-only")
    assert done.returncode == 0, done.stderr
    assert "gallery-scatter.png" in done.stdout
    saved = sorted(p.name for p in out.iterdir())
    assert saved == sorted(f"gallery-{name}.png" for name in gallery.EXAMPLES)
    for name in saved:
        _assert_drawn(out / name, (900, 620))


@pytest.mark.slow   # a subprocess loading the bundled models
def test_window_shots_are_made_from_the_panels_parts(tmp_path):
    out = tmp_path / "shots"
    done = _run("-m", "explorer.screenshots", str(out), "--only", "latent-map,sampler,interpolate")
    assert done.returncode == 0, done.stderr
    assert "saved latent-map.png, sampler.png, interpolate.png" in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["interpolate.png", "latent-map.png", "sampler.png"]
    for path in out.iterdir():
        _assert_drawn(path, (1400, 900))


@pytest.mark.slow   # a subprocess loading the bundled models
def test_a_shot_that_cannot_be_made_fails_the_run_and_names_why(tmp_path):
    out = tmp_path / "shots"
    done = _run("-c", BROKEN, str(out), "--only", "sampler,interpolate")
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert any(line.startswith("could not make sampler.png: a part it uses is missing") and "is_sampling" in line
               for line in lines), done.stderr
    assert "could not make interpolate.png: the window has no 'interpolate' panel" in lines, done.stderr
    assert list(out.iterdir()) == []     # neither was saved (or left as it was) as if made


def test_only_names_the_shots_it_knows_and_adds_those_a_shot_builds_on(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        screenshots.main([str(tmp_path), "--only", "sampler,no-such-shot"])
    assert exited.value.code == 2 and "no-such-shot" in capsys.readouterr().err
    parser = argparse.ArgumentParser()
    assert screenshots._wanted("runs.png,sampler-region", parser) == [
        "latent-selection", "sampler-region", "train", "runs"]
    assert screenshots._wanted(None, parser) == list(screenshots.SHOTS)


@pytest.mark.slow   # a subprocess training a small VQ-VAE (seconds) and loading the bundled models
def test_the_vq_shots_train_their_vq_vae_and_the_dark_shot_is_dark(tmp_path):
    out = tmp_path / "shots"
    done = _run("-m", "explorer.screenshots", str(out), "--only", "codes,latent-map-vq,latent-map-dark",
                "--vq-epochs", "2")
    assert done.returncode == 0, done.stderr
    assert "saved codes.png, latent-map-vq.png, latent-map-dark.png" in done.stdout
    for name in ("codes.png", "latent-map-vq.png", "latent-map-dark.png"):
        _assert_drawn(out / name, (1400, 900))
    mean = [_grey(out / name)[:120, :300].mean() for name in ("codes.png", "latent-map-dark.png")]
    assert mean[1] < 100 < mean[0], mean      # the menu bar, the panel header and the tab bar: light, then dark


def test_vq_names_a_missing_file_or_a_checkpoint_that_is_no_vq_vae(tmp_path, capsys):
    from core.paths import bundled_model

    with pytest.raises(SystemExit) as exited:
        screenshots.main([str(tmp_path), "--only", "codes", "--vq", str(tmp_path / "no-such.safetensors")])
    assert exited.value.code == 2 and "--vq: no file" in capsys.readouterr().err
    vae = bundled_model("vae")
    if vae is None:
        return
    session = screenshots.Session(None, None, tmp_path, 1, 0.0, vq_checkpoint=Path(vae))
    with pytest.raises(screenshots.ShotError, match="is a vae checkpoint, not a VQ-VAE"):
        screenshots._vq_shown(session)
    assert list(tmp_path.iterdir()) == []
