"""Screenshots of every panel with the bundled models, as a user sees them (for the README and for looking).

    QT_QPA_PLATFORM=offscreen python -m explorer.screenshots resources/screenshots [--epochs 3]

Opens the window on the bundled digits and models, visits each tab (letting its background work finish), trains the
digits preset for a few epochs on the Train tab, and saves one PNG per panel; latent-selection.png is a lasso selection
on the map of all splits with its grid, sampler-region.png that selection sent to the Sampler; then shows that run
everywhere but pins the bundled model in the sampler (workspace.png: the models list and two panels on two models).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _wait(app, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


def _lasso_selection(app, window, path: Path) -> bool:
    """The map of all splits with a lasso drawn around the zeros' cluster and its selection in the grid beside the
    map, worst reconstruction first (latent-selection.png). The lasso is the one a drag would draw (a wobbly loop
    holding about 150 points), given to the panel as a finished drag gives it."""
    import numpy as np

    panel = window.panels.get("latent_map")
    if panel is None:
        return False
    window.tabs.setCurrentWidget(panel)
    panel.split_box.setCurrentText("all")
    if not _wait(app, lambda: panel.xy is not None and panel.projection_shown == "umap" and not panel.tasks.busy(),
                 240):
        return False
    xy, labels = panel.xy.astype(np.float64), panel.latents.labels
    centre = np.median(xy[labels == 0], axis=0)
    lo, hi = 0.0, float(np.ptp(xy, axis=0).max())
    for _ in range(30):                        # the radius that holds about 150 points
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if len(panel.mapper.tree.query_ball_point(centre, mid)) < 150 else (lo, mid)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    wobble = hi * (1.0 + 0.12 * np.sin(3 * t + 0.5) + 0.05 * np.sin(7 * t))
    outline = np.stack([centre[0] + wobble * np.cos(t), centre[1] + 0.9 * wobble * np.sin(t)], axis=1)
    panel.select_outline(outline)
    panel.selection_grid.sort_box.setCurrentText("worst reconstruction first")
    panel.scatter.show_outline(outline)
    _wait(app, lambda: False, 0.5)
    window.grab().save(str(path))
    panel.scatter.show_outline(None)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the digits preset trained on the Train tab")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds each panel gets for its background work")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    from explorer.main_window import MainWindow
    from explorer.state import AppState

    app = QApplication.instance() or QApplication([])
    state = AppState()
    window = MainWindow(state, defer_panels=True)
    window.resize(1400, 900)
    window.show()
    window.load_initial()
    if not _wait(app, lambda: state.vae is not None and state.dataset is not None, 120):
        print("the bundled model or dataset did not load", file=sys.stderr)
        return 1

    names = ["train", "latent-map", "sampler", "interpolate", "restore"]
    for index, name in enumerate(names[1:], start=1):
        window.tabs.setCurrentIndex(index)
        panel = window.tabs.currentWidget()
        _wait(app, lambda: False, args.settle)
        if hasattr(panel, "select_point") and getattr(panel, "latents", None) is not None:
            panel.select_point(0)   # the detail view: image, reconstruction, latent vector, neighbours
            _wait(app, lambda: False, 0.5)
        for button in ("run_button", "restore_button"):   # panels with a "run" action: show a result, not a blank
            if hasattr(panel, button):
                getattr(panel, button).click()
                _wait(app, lambda: False, args.settle)
        window.grab().save(str(args.out / f"{name}.png"))

    if _lasso_selection(app, window, args.out / "latent-selection.png"):
        names.append("latent-selection")
        # "more like these": the selection sent to the Sampler, which samples the region the selected images cover
        sampler = window.panels.get("sampler")
        window.panels["latent_map"].send_selection("sampler")
        if sampler is not None and _wait(app, lambda: not sampler.is_sampling() and sampler.region is not None, 60):
            _wait(app, lambda: False, 0.5)
            window.grab().save(str(args.out / "sampler-region.png"))
            names.append("sampler-region")

    window.tabs.setCurrentIndex(0)
    panel = window.train_panel
    panel.train_form.set_field("epochs", args.epochs)
    panel.start_training()
    _wait(app, lambda: panel.mode == "idle", 600)
    panel.dashboard.redraw()
    _wait(app, lambda: False, 0.5)
    window.grab().save(str(args.out / "train.png"))

    # Two models side by side: the run just trained is shown everywhere, but the sampler pins the bundled model.
    run = next((e for e in state.models if e.source == "training"), None)
    bundled = next((e for e in state.models if e.source == "bundled" and e.kind == "vae"), None)
    if run is not None and bundled is not None:
        window.models_list.select(run)
        window.tabs.setCurrentWidget(window.panels["sampler"])
        combo = window.header.combos["vae"]
        combo.setCurrentIndex(combo.findData(bundled.id))
        _wait(app, lambda: False, args.settle)
        window.grab().save(str(args.out / "workspace.png"))
        names.append("workspace")

    # Runs compared: a second run with another beta, then both selected in the Runs tab.
    window.tabs.setCurrentIndex(0)
    panel.vae_form.set_field("beta", 2.0)
    panel.start_training()
    _wait(app, lambda: panel.mode == "idle", 600)
    runs_panel = window.panels.get("runs")
    if runs_panel is not None:
        window.tabs.setCurrentWidget(runs_panel)
        _wait(app, lambda: len(runs_panel.runs) >= 2, 60)
        runs_panel.select_paths([r.path for r in runs_panel.runs[:2]])
        runs_panel.compare_selected()
        _wait(app, lambda: False, 1.0)
        window.grab().save(str(args.out / "runs.png"))
        names.append("runs")
    window.close()
    app.processEvents()
    print("saved", ", ".join(f"{n}.png" for n in names), "in", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
