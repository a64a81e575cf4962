"""The application shell: launch without a display, panels and placeholders, start-up loading, File menu, settings,
errors reaching dialogs, closing while training, and the image grid every panel uses."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QApplication, QMessageBox

import explorer.main_window as mw
from core.config import Config, DataConfig, VAEConfig
from core.paths import bundled_model
from explorer.main_window import PANELS, MainWindow
from explorer.state import AppState
from explorer.widgets.image_grid import ImageGrid, array_to_qimage
from explorer.worker import running_workers

ROOT = Path(__file__).resolve().parents[2]


def error_boxes() -> list[QMessageBox]:
    gc.collect()   # not during the list below: see _active_timers in conftest.py
    return [w for w in QApplication.topLevelWidgets() if isinstance(w, QMessageBox) and w.isVisible()]


@pytest.fixture
def window(qtbot):
    win = MainWindow(AppState())
    qtbot.addWidget(win)
    win.show()
    return win


def tiny_checkpoint(path: Path) -> Path:
    from core.data.datasets import DatasetMeta
    from core.models import build_model
    from core.training.checkpoint import save_checkpoint

    meta = DatasetMeta("digits", tuple(str(i) for i in range(10)), 1, 8)
    cfg = Config(DataConfig(image_size=8), VAEConfig(latent_dim=3, width=8, stages=1))
    return save_checkpoint(path, model=build_model(cfg.model, meta), config=cfg, meta=meta)


# ---- launching ------------------------------------------------------------------------------------------------------
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the no-display check is about Linux X11/Wayland")
def test_no_display_prints_one_line_and_exits_2():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    code = ("import sys; from explorer.app import run; rc = run([]); "
            "print('qt-loaded' if any(m.startswith('PySide6') for m in sys.modules) else 'qt-free'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-explorer: no display found")
    assert "QT_QPA_PLATFORM=offscreen" in lines[0] and "vae-explorer train" in lines[0]
    assert proc.stdout.strip() == "qt-free"


@pytest.mark.parametrize(("argv", "expected"), [
    (["trian"], "unknown command 'trian'; did you mean `vae-explorer train`?"),
    (["smaple"], "did you mean `vae-explorer sample`?"),
    (["no/such/run"], "no/such/run does not exist; give a checkpoint"),
    (["--bogus"], "unknown option '--bogus'"),
])
def test_typos_and_missing_paths_at_launch_give_one_line_and_exit_2(argv, expected):
    """A mistyped command or a missing path must not silently open the GUI (nor import Qt)."""
    code = ("import sys; from explorer.launch import main; rc = main(sys.argv[1:]); "
            "print('qt-loaded' if any(m.startswith('PySide6') for m in sys.modules) else 'qt-free'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-explorer: error: ") and expected in lines[0], proc.stderr
    assert proc.stdout.strip() == "qt-free"


def test_run_shows_the_window_and_opens_a_checkpoint(qtbot, monkeypatch, tmp_path):
    from explorer import app as app_module

    ckpt = tiny_checkpoint(tmp_path / "mine.safetensors")
    seen = {}

    def fake_exec(*_args):   # stands in for the event loop: look at the window while it runs
        # The window run() showed (an earlier test's closed window may still await its deferred deletion).
        (win,) = [w for w in QApplication.topLevelWidgets() if isinstance(w, MainWindow) and w.isVisible()]
        seen["visible"] = win.isVisible()
        qtbot.waitUntil(lambda: win.state.vae is not None and win.state.vae.path == ckpt, timeout=60_000)
        seen["dataset"] = win.state.dataset
        # The panels deferred until torch was imported off the GUI thread are all built now.
        seen["deferred"], seen["errors"], seen["panels"] = list(win._deferred), dict(win.panel_errors), set(win.panels)
        return 0

    monkeypatch.setattr(QApplication, "exec", fake_exec)
    assert app_module.run([str(ckpt)]) == 0
    assert seen["visible"] and seen["dataset"] is not None
    assert seen["deferred"] == [] and seen["errors"] == {}
    for title, module, _ in PANELS:
        folder = ROOT / "explorer" / "panels"        # a panel is a module or a package (sampler/, interpolate/)
        exists = (folder / f"{module}.py").exists() or (folder / module / "__init__.py").exists()
        assert (module in seen["panels"]) == exists, title
    assert not running_workers()   # run() closed the window and joined its workers when the loop ended


# ---- panels ---------------------------------------------------------------------------------------------------------
def test_a_tab_per_panel_and_placeholders_for_missing_ones(window):
    assert [window.tabs.tabText(i) for i in range(window.tabs.count())] == [t for t, _, _ in PANELS]
    assert window.panel_errors == {}
    assert "train" in window.panels
    for title, module, _ in PANELS:
        folder = ROOT / "explorer" / "panels"        # a panel is a module or a package (sampler/, interpolate/)
        exists = (folder / f"{module}.py").exists() or (folder / module / "__init__.py").exists()
        assert (module in window.panels) == exists, title


def test_missing_module_is_a_placeholder_but_a_broken_one_is_reported(qtbot, monkeypatch):
    real_import = mw.importlib.import_module

    def fake_import(name):
        if name == "explorer.panels.ghost":
            raise ModuleNotFoundError("No module named 'explorer.panels.ghost'", name="explorer.panels.ghost")
        if name == "explorer.panels.broken":
            raise ModuleNotFoundError("No module named 'notinstalled'", name="notinstalled")
        return real_import(name)

    monkeypatch.setattr(mw.importlib, "import_module", fake_import)
    monkeypatch.setattr(mw, "PANELS", (("Train", "train", "TrainPanel"), ("Ghost", "ghost", "GhostPanel"),
                                       ("Broken", "broken", "BrokenPanel")))
    win = MainWindow(AppState())
    qtbot.addWidget(win)
    assert win.tabs.count() == 3
    assert set(win.panel_errors) == {"Broken"} and "notinstalled" in win.panel_errors["Broken"]
    assert "ghost" not in win.panels and "broken" not in win.panels


def test_startup_loads_the_bundled_dataset_and_models(window, qtbot):
    window.load_initial(None)
    qtbot.waitUntil(lambda: window.state.dataset is not None, timeout=60_000)
    assert window.state.dataset.meta.name == "digits"
    assert "digits" in window.status.dataset_label.text()
    assert window.status.device_label.text().startswith(("CPU, ", "CUDA: "))
    qtbot.waitUntil(lambda: not running_workers(), timeout=60_000)
    assert (window.state.vae is not None) == (bundled_model("vae") is not None)
    assert window.state.diffusion is None     # loaded when a panel needs it (tests/explorer/test_deferred_models.py)
    assert (window.bundled.pending.get("diffusion") == bundled_model("diffusion")) == \
        (bundled_model("diffusion") is not None)
    memory = window.status.memory_label.text()
    assert memory.endswith("MiB") and float(memory.split()[0]) > 10


# ---- File menu ------------------------------------------------------------------------------------------------------
def test_bad_checkpoint_shows_the_message_and_the_app_keeps_running(window, qtbot, tmp_path):
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"this is not a checkpoint")
    with qtbot.waitSignal(window.open_checkpoint(str(bad)).finished, timeout=60_000):
        pass
    (box,) = error_boxes()
    assert "broken.safetensors" in box.text() and box.detailedText() == ""   # a UserError: message only
    box.close()
    assert window.isVisible() and window.state.vae is None
    # ... and a good one opens afterwards, lands in AppState and in the recent files.
    good = tiny_checkpoint(tmp_path / "good.safetensors")
    with qtbot.waitSignal(window.open_checkpoint(str(good)).finished, timeout=60_000):
        pass
    assert window.state.vae is not None and window.state.vae.path == good
    assert window.recent.paths()[0] == str(good.resolve())
    assert [a.text() for a in window.recent.menu.actions()][0] == str(good.resolve())
    assert "good.safetensors" in window.status.model_label.text()


def test_edited_checkpoint_metadata_is_refused_in_plain_words(window, qtbot, tmp_path):
    """A checkpoint whose metadata was edited to a negative image size used to be accepted and fail later."""
    import json
    import struct

    good = tiny_checkpoint(tmp_path / "good.safetensors")
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["meta"])
    meta["image_size"] = -8
    header["__metadata__"]["meta"] = json.dumps(meta)
    data = json.dumps(header).encode()
    bad = tmp_path / "edited.safetensors"
    bad.write_bytes(struct.pack("<Q", len(data)) + data + raw[8 + n:])
    with qtbot.waitSignal(window.open_checkpoint(str(bad)).finished, timeout=60_000):
        pass
    (box,) = error_boxes()
    assert "edited.safetensors" in box.text() and "image_size" in box.text() and box.detailedText() == ""
    box.close()
    assert window.state.vae is None


def _folder_checkpoint(tmp_path: Path, folder: Path) -> Path:
    """A tiny VAE 'trained' on an image folder (two classes of 8 px images the test writes)."""
    from PIL import Image

    from core.data.datasets import load_dataset
    from core.models import build_model
    from core.training.checkpoint import save_checkpoint

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (folder / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(folder / cls / f"{i}.png")
    cfg = Config(DataConfig(name=f"folder:{folder}", image_size=8), VAEConfig(latent_dim=3, width=8, stages=1))
    meta = load_dataset(cfg.data).meta
    return save_checkpoint(tmp_path / f"{folder.name}.safetensors", model=build_model(cfg.model, meta), config=cfg,
                           meta=meta)


def test_a_model_brings_its_own_dataset_and_a_missing_one_is_reported_once(window, qtbot, tmp_path):
    """The map, interpolation and restoration panels need the data a model was trained on: opening a checkpoint
    trained on other data loads that data (on a worker); data that cannot be loaded is one dialog, not one per
    snapshot, and the dataset already loaded stays."""
    from core.data.datasets import load_dataset

    window.state.set_dataset(load_dataset(DataConfig()))
    pets = _folder_checkpoint(tmp_path, tmp_path / "pets")
    with qtbot.waitSignal(window.open_checkpoint(str(pets)).finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: window.state.dataset.meta.name.startswith("folder:"), timeout=60_000)
    assert window.state.dataset.meta.class_names == ("cats", "dogs") and window.state.dataset.meta.image_size == 8
    assert "pets" in window.status.dataset_label.text() and not error_boxes()
    assert window.state.split_to_encode("test")[1] is window.state.dataset.test   # the panels can use it

    gone = _folder_checkpoint(tmp_path, tmp_path / "gone")
    import shutil

    shutil.rmtree(tmp_path / "gone")
    with qtbot.waitSignal(window.open_checkpoint(str(gone)).finished, timeout=60_000):
        pass
    qtbot.waitUntil(lambda: len(error_boxes()) == 1 and not running_workers(), timeout=60_000)
    (box,) = error_boxes()
    assert "training data could not be loaded" in box.text() and "gone does not exist" in box.text()
    box.close()
    window.state.vaeChanged.emit()             # the next snapshot of the same run: no second dialog
    qtbot.wait(200)
    assert not running_workers() and not error_boxes()
    assert window.state.dataset.meta.class_names == ("cats", "dogs")   # what was loaded stays


def test_save_checkpoint_as_copies_or_writes(window, qtbot, tmp_path):
    from core.training.checkpoint import load_model

    src = tiny_checkpoint(tmp_path / "src.safetensors")
    loaded = load_model(src)
    window.save_checkpoint(loaded, str(tmp_path / "copy"))
    assert (tmp_path / "copy.safetensors").read_bytes() == src.read_bytes()
    loaded.path = None   # e.g. a snapshot taken during training: no file behind it
    window.save_checkpoint(loaded, str(tmp_path / "snap.safetensors"))
    again = load_model(tmp_path / "snap.safetensors")
    assert again.model.latent_dim == 3


def test_export_png_of_the_current_view(window, tmp_path):
    window.tabs.setCurrentIndex(0)
    window.export_png(str(tmp_path / "train"))
    assert (tmp_path / "train.png").stat().st_size > 0
    for i in range(1, window.tabs.count()):
        window.tabs.setCurrentIndex(i)
        out = tmp_path / f"tab{i}.png"
        window.export_png(str(out))
        # Written (by the panel, or grabbed), or refused with a plain message (e.g. "nothing to export yet").
        boxes = error_boxes()
        assert out.is_file() or (len(boxes) == 1 and boxes[0].detailedText() == ""), window.tabs.tabText(i)
        for box in boxes:
            box.close()


def test_run_folder_that_is_not_one_is_refused(window, tmp_path):
    window.open_run_folder(str(tmp_path))
    (box,) = error_boxes()
    assert "not a run folder" in box.text()
    box.close()
    assert window.train_panel.mode == "idle"


def test_shortcuts(window):
    shortcuts = {a.shortcut().toString(): a for a in window.findChildren(type(window.train_action))
                 if not a.shortcut().isEmpty()}
    for key in ("Ctrl+O", "Ctrl+T", "Ctrl+E", "Ctrl+Q", "Ctrl+1", "Ctrl+5"):
        assert key in shortcuts, key
    shortcuts["Ctrl+3"].trigger()
    assert window.tabs.currentIndex() == 2
    assert window.train_action.shortcut() == QKeySequence("Ctrl+T")


def test_geometry_tab_and_theme_are_remembered(qtbot):
    win = MainWindow(AppState())
    qtbot.addWidget(win)
    win.show()
    # Height only: the offscreen screen is 800 px wide, narrower than the window's minimum width, and
    # restoreGeometry keeps windows on screen.
    height = max(600, win.minimumSizeHint().height())    # some height other than the default 820
    win.resize(win.width(), height)
    win.tabs.setCurrentIndex(2)
    win.set_theme("dark")
    win.close()
    again = MainWindow(AppState())
    qtbot.addWidget(again)
    assert again.height() == height
    assert again.tabs.currentIndex() == 2
    assert again.theme_actions["dark"].isChecked()
    assert QApplication.instance().palette().window().color().lightness() < 128
    again.set_theme("light")
    assert QApplication.instance().palette().window().color().lightness() > 128
    again.tabs.setCurrentIndex(0)
    again.close()


# ---- closing while training -----------------------------------------------------------------------------------------
def test_closing_mid_training_asks_then_stops_saves_and_joins(window, qtbot, monkeypatch):
    from test_train_panel import tiny  # by module name: torch-fidelity installs a package named `tests`

    panel = window.train_panel
    tiny(panel, epochs=500)
    panel.start_training()
    qtbot.waitUntil(lambda: panel.dashboard.plots["loss"].series["loss"].n >= 1, timeout=120_000)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: (asked.append(a), answers.pop(0))[1])
    window.close()
    assert window.isVisible() and panel.is_training()       # "No": keep training
    window.close()
    assert len(asked) == 2 and not window.isVisible()
    assert not running_workers() and panel.mode == "idle"
    assert panel.last_status == "stopped"
    assert panel.last_checkpoint and Path(panel.last_checkpoint).is_file()
    assert "interrupt" in panel.dashboard.log_view.toPlainText()


def test_closing_when_idle_does_not_ask(window, monkeypatch):
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: pytest.fail("asked while idle"))
    window.close()
    assert not window.isVisible()


# ---- image grid -----------------------------------------------------------------------------------------------------
def test_array_to_qimage_is_pixel_exact():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    img = array_to_qimage(rgb)
    assert (img.width(), img.height()) == (3, 2)
    c = img.pixelColor(2, 1)
    assert (c.red(), c.green(), c.blue()) == tuple(rgb[1, 2])
    gray = array_to_qimage(np.full((4, 5, 1), 77, np.uint8))
    assert gray.pixelColor(4, 3).red() == 77
    with pytest.raises(TypeError):
        array_to_qimage(np.zeros((2, 2, 3), np.float32))


def test_image_grid_layout_click_and_export(qtbot, tmp_path):
    grid = ImageGrid()
    qtbot.addWidget(grid)
    grid.resize(400, 300)
    grid.show()
    imgs = np.zeros((6, 8, 8, 1), np.uint8)
    imgs[4] = 255
    grid.set_images(imgs, columns=3, row_labels=["a", "b"], captions=[str(i) for i in range(6)])
    assert grid.rows == 2 and grid.count() == 6
    cell = grid._cell_rect(4)
    assert cell.width() == cell.height() and cell.width() % 8 == 0   # whole-number nearest-neighbour scale
    with qtbot.waitSignal(grid.clicked) as blocker:
        qtbot.mouseClick(grid, Qt.MouseButton.LeftButton, pos=cell.center())
    assert blocker.args == [4]
    assert grid.index_at(QPoint(0, 0)) == -1
    img = grid.to_image()
    assert img.pixelColor(cell.center()).red() == 255           # the white image is where cell 4 is drawn
    assert img.pixelColor(grid._cell_rect(3).center()).red() == 0
    grid.save_png(str(tmp_path / "grid.png"))
    assert (tmp_path / "grid.png").stat().st_size > 0
    # The layout is cached per size: a bigger widget gets bigger cells, new images a new layout.
    grid.resize(800, 600)
    big = grid._cell_rect(4).width()
    assert big > cell.width()
    grid.set_images(np.zeros((2, 8, 8, 1), np.uint8), columns=2)    # one row of two: bigger cells again
    assert grid._cell_rect(1).width() > big
    with pytest.raises(ValueError):
        grid.set_images(np.zeros((2, 8, 8, 1), np.float32), columns=2)


# ---- system libraries for Qt's xcb plugin ---------------------------------------------------------------------------
def test_missing_xcb_libraries_are_named_with_their_packages():
    from explorer.app import XCB_LIBRARIES, missing_libraries_message, missing_xcb_libraries

    absent = {"libxcb-icccm.so.4", "libxcb-keysyms.so.1"}
    tried = []

    def fake_load(name):
        tried.append(name)
        if name in absent:
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return object()

    missing = missing_xcb_libraries(fake_load)
    assert sorted(missing) == [("libxcb-icccm.so.4", "libxcb-icccm4"), ("libxcb-keysyms.so.1", "libxcb-keysyms1")]
    assert tried == [lib for lib, _ in XCB_LIBRARIES]   # every library is tried: all missing ones in one message
    assert "libxcb-cursor.so.0" in tried and "libxkbcommon-x11.so.0" in tried
    line = missing_libraries_message(missing)
    assert "\n" not in line and "libxcb-icccm.so.4" in line and "sudo apt-get install" in line
    assert "libxcb-icccm4" in line and "libxcb-keysyms1" in line
    assert missing_xcb_libraries(lambda name: object()) == []
    # Two libraries of one package (glib): the package is named once.
    glib = missing_libraries_message([("libglib-2.0.so.0", "libglib2.0-0"), ("libgthread-2.0.so.0", "libglib2.0-0")])
    assert glib.count("libglib2.0-0") == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
@pytest.mark.parametrize(("env", "expected"), [
    ({"DISPLAY": ":0"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, True),
    ({"QT_QPA_PLATFORM": "xcb"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb:nograb"}, True),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, False),
    ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland;xcb"}, False),
    ({"DISPLAY": ":0", "WAYLAND_DISPLAY": "wayland-0"}, False),   # a Wayland session: Qt tries wayland first
    ({"DISPLAY": ":0", "XDG_SESSION_TYPE": "wayland"}, False),
    ({}, False),
])
def test_xcb_platform_expected(env, expected):
    from explorer.app import xcb_platform_expected

    assert xcb_platform_expected(env) is expected


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the xcb plugin is Linux's")
def test_a_missing_xcb_library_at_launch_is_one_line_and_exit_2_without_qt():
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "XDG_SESSION_TYPE")}
    env["DISPLAY"] = ":98"
    # The real loader (ctypes) on a library that exists nowhere, beside one that exists everywhere.
    code = ("import sys; import explorer.app as app; "
            "app.XCB_LIBRARIES = (('libc.so.6', 'libc6'), ('libvae-explorer-absent.so.7', 'libvae-explorer-absent7')); "
            "rc = app.run([]); "
            "print('qt-loaded' if any(m.startswith('PySide6') for m in sys.modules) else 'qt-free'); sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vae-explorer: "), proc.stderr
    assert "libvae-explorer-absent.so.7" in lines[0] and "sudo apt-get install libvae-explorer-absent7" in lines[0]
    assert "libc.so.6" not in lines[0]
    assert proc.stdout.strip() == "qt-free"


def test_sigterm_closes_the_window_stopping_and_saving_the_run(window, qtbot):
    """`docker stop`, systemd or a logout send SIGTERM: the run stops after its step with an interrupt checkpoint,
    no question is asked, and the previous signal handlers come back afterwards."""
    import signal

    from test_train_panel import tiny  # by module name: torch-fidelity installs a package named `tests`

    from explorer.app import close_on_signals

    before = signal.getsignal(signal.SIGTERM)
    received, restore = close_on_signals(window)
    try:
        panel = window.train_panel
        tiny(panel, epochs=500)
        panel.start_training()
        qtbot.waitUntil(lambda: panel.dashboard.plots["loss"].series["loss"].n >= 1, timeout=120_000)
        os.kill(os.getpid(), signal.SIGTERM)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    finally:
        restore()
    assert received == [signal.SIGTERM]
    assert not running_workers() and panel.last_status == "stopped"
    assert panel.last_checkpoint and Path(panel.last_checkpoint).is_file()
    assert signal.getsignal(signal.SIGTERM) == before
