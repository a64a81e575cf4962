"""Screenshots of every panel with the bundled models, as a user sees them (for the README and for looking).

    QT_QPA_PLATFORM=offscreen python -m explorer.screenshots resources/screenshots [--epochs 3]

Opens the window on the bundled digits and models, visits each tab (letting its background work finish), trains the
digits preset for a few epochs on the Train tab, and saves one PNG per panel; latent-selection.png is a lasso selection
on the map of all splits with its grid, sampler-region.png that selection sent to the Sampler; then shows that run
everywhere but pins the bundled model in the sampler (workspace.png: the models list and two panels on two models);
a second run with another beta compared with it in the Runs tab (runs.png). With `--gallery`, also each example of
the widget gallery (explorer/gallery.py: the pure widgets on synthetic data) as gallery-NAME.png; `--gallery-only`
saves just those, in seconds, to check a visual change of a widget without a model or a training run.
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


def _settle(app, seconds: float) -> None:
    _wait(app, lambda: False, seconds)


def _open_window(app, state):
    """The main window on the bundled digits and models (None when they do not load)."""
    from explorer.main_window import MainWindow

    window = MainWindow(state, defer_panels=True)
    window.resize(1400, 900)
    window.show()
    window.load_initial()
    if not _wait(app, lambda: state.vae is not None and state.dataset is not None, 120):
        print("the bundled model or dataset did not load", file=sys.stderr)
        window.close()
        return None
    return window


def _panel_shots(app, window, out: Path, settle: float) -> list[str]:
    """One PNG per explorer tab after Train, each after its background work (and its run action) had time."""
    names = ["latent-map", "sampler", "interpolate", "restore"]
    for index, name in enumerate(names, start=1):
        window.tabs.setCurrentIndex(index)
        panel = window.tabs.currentWidget()
        _settle(app, settle)
        if hasattr(panel, "select_point") and getattr(panel, "latents", None) is not None:
            panel.select_point(0)   # the detail view: image, reconstruction, latent vector, neighbours
            _settle(app, 0.5)
        for button in ("run_button", "restore_button"):   # panels with a "run" action: show a result, not a blank
            if hasattr(panel, button):
                getattr(panel, button).click()
                _settle(app, settle)
        window.grab().save(str(out / f"{name}.png"))
    return names


def _selection_shots(app, window, out: Path) -> list[str]:
    """The lasso selection on the map, then that selection sent to the Sampler ("more like these")."""
    if not _lasso_selection(app, window, out / "latent-selection.png"):
        return []
    sampler = window.panels.get("sampler")
    window.panels["latent_map"].send_selection("sampler")
    if sampler is None or not _wait(app, lambda: not sampler.is_sampling() and sampler.region is not None, 60):
        return ["latent-selection"]
    _settle(app, 0.5)
    window.grab().save(str(out / "sampler-region.png"))
    return ["latent-selection", "sampler-region"]


def _train(app, window, **fields) -> None:
    """Train on the Train tab with the form's settings changed by `fields` (form name -> {field: value})."""
    window.tabs.setCurrentIndex(0)
    panel = window.train_panel
    for form, values in fields.items():
        for name, value in values.items():
            getattr(panel, form).set_field(name, value)
    panel.start_training()
    _wait(app, lambda: panel.mode == "idle", 600)


def _workspace_shot(app, window, state, out: Path, settle: float) -> list[str]:
    """Two models side by side: the run just trained is shown everywhere, but the sampler pins the bundled model."""
    run = next((e for e in state.models if e.source == "training"), None)
    bundled = next((e for e in state.models if e.source == "bundled" and e.kind == "vae"), None)
    if run is None or bundled is None:
        return []
    window.models_list.select(run)
    window.tabs.setCurrentWidget(window.panels["sampler"])
    combo = window.header.combos["vae"]
    combo.setCurrentIndex(combo.findData(bundled.id))
    _settle(app, settle)
    window.grab().save(str(out / "workspace.png"))
    return ["workspace"]


def _runs_shot(app, window, out: Path) -> list[str]:
    """Runs compared: a second run with another beta, then both selected in the Runs tab."""
    _train(app, window, vae_form={"beta": 2.0})
    runs_panel = window.panels.get("runs")
    if runs_panel is None:
        return []
    window.tabs.setCurrentWidget(runs_panel)
    _wait(app, lambda: len(runs_panel.runs) >= 2, 60)
    runs_panel.select_paths([r.path for r in runs_panel.runs[:2]])
    runs_panel.compare_selected()
    _settle(app, 1.0)
    window.grab().save(str(out / "runs.png"))
    return ["runs"]


def _window_shots(app, out: Path, epochs: int, settle: float) -> list[str] | None:
    """Every panel of the window with the bundled models, and a short training run (None: nothing loaded)."""
    from explorer.state import AppState

    state = AppState()
    window = _open_window(app, state)
    if window is None:
        return None
    names = _panel_shots(app, window, out, settle) + _selection_shots(app, window, out)
    _train(app, window, train_form={"epochs": epochs})
    window.train_panel.dashboard.redraw()
    _settle(app, 0.5)
    window.grab().save(str(out / "train.png"))
    names = ["train", *names, *_workspace_shot(app, window, state, out, settle), *_runs_shot(app, window, out)]
    window.close()
    app.processEvents()
    return names


def _gallery_shots(app, out: Path) -> list[str]:
    """The widget gallery's examples (explorer/gallery.py): each pure widget on synthetic data, no model needed."""
    from explorer.gallery import EXAMPLES, shot

    for name in EXAMPLES:
        shot(name, str(out / f"gallery-{name}.png"), app)
    return [f"gallery-{name}" for name in EXAMPLES]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the digits preset trained on the Train tab")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds each panel gets for its background work")
    parser.add_argument("--gallery", action="store_true", help="also the widget gallery's examples (gallery-NAME.png)")
    parser.add_argument("--gallery-only", action="store_true",
                        help="only the widget gallery's examples (seconds; no model, no training)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    names = []
    if not args.gallery_only:
        names = _window_shots(app, args.out, args.epochs, args.settle)
        if names is None:
            return 1
    if args.gallery or args.gallery_only:
        names += _gallery_shots(app, args.out)
    print("saved", ", ".join(f"{n}.png" for n in names), "in", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
