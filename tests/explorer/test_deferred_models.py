"""The bundled DDPM is not loaded at launch (its diffusers import is ~350 MiB of launch memory,
bench/bench_launch_memory.py) but when a panel that uses a diffusion model is first shown; meanwhile the panel's
header, the status bar and the panel itself say that it is loading, and a saved workspace naming it does not load it
at launch either."""

from __future__ import annotations

import pytest
from test_workspace import launch

from core.paths import bundled_model
from explorer.main_window import MainWindow
from explorer.state import AppState

pytestmark = pytest.mark.skipif(bundled_model("diffusion") is None or bundled_model("vae") is None,
                                reason="needs the bundled models in resources/")


def started(qtbot) -> MainWindow:
    win = MainWindow(AppState())
    qtbot.addWidget(win)
    win.tabs.setCurrentWidget(win.train_panel)
    win.show()
    win.load_initial(None)
    qtbot.waitUntil(lambda: win.state.vae is not None and not win._workers, timeout=120_000)
    return win


def test_the_bundled_ddpm_loads_when_a_panel_first_needs_it(qtbot):
    win = started(qtbot)
    state = win.state
    assert state.diffusion is None and [e.kind for e in state.models] == ["vae"]
    for key in ("latent_map", "interpolate", "dataset_browser", "runs"):     # panels that use no diffusion model
        win.tabs.setCurrentWidget(win.panels[key])
    assert not win._workers and state.loading == {} and win.bundled.loaded == 0

    win.tabs.setCurrentWidget(win.panels["sampler"])
    combo = win.header.combos["diffusion"]
    assert combo.isVisibleTo(win) and combo.itemText(0) == "shown: loading the bundled diffusion model…"
    assert "diffusion: loading the bundled diffusion model…" in win.status.model_label.text()
    assert win.panels["sampler"].compare.text() == "compare with diffusion (loading…)"
    assert not win.panels["sampler"].compare.isEnabled()

    qtbot.waitUntil(lambda: state.diffusion is not None and not win._workers, timeout=120_000)
    assert state.diffusion.path == bundled_model("diffusion")
    entry = state.shown["diffusion"]
    assert entry.source == "bundled" and entry in state.models and state.loading == {}
    assert combo.itemText(0) == f"shown: {entry.describe()}"
    assert "loading" not in win.status.model_label.text()
    assert win.panels["sampler"].compare.isEnabled()
    assert win.panels["sampler"].compare.text() == "compare with diffusion"
    win.tabs.setCurrentWidget(win.panels["restore"])       # another diffusion panel: loaded once, not again
    assert not win._workers and win.bundled.loaded == 1 and win.bundled.pending == {}


def test_restore_says_the_diffusion_model_is_loading(qtbot):
    win = started(qtbot)
    panel = win.panels["restore"]
    win.tabs.setCurrentWidget(panel)
    assert win.state.loading == {"diffusion": "loading the bundled diffusion model…"}
    panel.run_restore()
    assert panel.cells["diffusion"].info.text() == "loading the bundled diffusion model…; Restore again when it is in"
    assert panel.cells["vae"].info.text() == "working…"
    qtbot.waitUntil(lambda: win.state.diffusion is not None and not panel.busy() and not win._workers,
                    timeout=120_000)
    assert panel.results_out_of_date()       # computed without the diffusion model, which is in now


def test_a_saved_workspace_naming_the_bundled_ddpm_does_not_load_it_at_launch(qtbot, tmp_path):
    ws = tmp_path / "ws.json"
    first = launch(qtbot, ws)
    first.tabs.setCurrentWidget(first.panels["sampler"])
    qtbot.waitUntil(lambda: first.state.diffusion is not None and not first._workers, timeout=120_000)
    first.tabs.setCurrentWidget(first.train_panel)
    first.close()
    assert "digits-diffusion" in ws.read_text()

    second = launch(qtbot, ws)
    assert second.state.diffusion is None and second.bundled.pending
    second.tabs.setCurrentWidget(second.panels["restore"])
    qtbot.waitUntil(lambda: second.state.diffusion is not None and not second._workers, timeout=120_000)
    assert [e.kind for e in second.state.models].count("diffusion") == 1
