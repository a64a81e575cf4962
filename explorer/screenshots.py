"""Screenshots of every panel with the bundled models, as a user sees them (for the README and for looking).

    QT_QPA_PLATFORM=offscreen python -m explorer.screenshots resources/screenshots [--epochs 3] [--only NAME,...]
        [--vq CHECKPOINT | --vq-epochs 8]

Opens the window on the bundled digits and models, visits each tab and saves one PNG once its work is done: the
latent map (PCA at once, the first image inspected), the sampler's grid, the interpolation strip, the Denoise/Enhance
row with every restorer's result; latent-selection.png is a lasso selection on the map of all splits with its grid,
sampler-region.png that selection sent to the Sampler; train.png the Train tab after training the digits preset for a
few epochs; then that run is shown everywhere but the sampler pins the bundled model (workspace.png: the models list
and two panels on two models); a second run with another beta is compared with it in the Runs tab (runs.png).
The VQ-VAE shots (there is no bundled VQ-VAE) open `--vq CHECKPOINT`, or else train the digits-vq preset for
`--vq-epochs` epochs (8: ~12 s on a 2-core CPU, seed 0) in a temporary folder: codes.png is the Codes tab with
two cells of a "3" repainted, latent-map-vq.png its codebook map with one code inspected and an image's codes ringed.
latent-map-dark.png is the latent map in the dark look (View > Dark look), which is put back to light afterwards.
`--only` makes just the named shots (and those they build on: sampler-region on latent-selection, workspace and runs
on train). With `--gallery`, also each example of the widget gallery (explorer/gallery.py: the pure widgets on
synthetic data) as gallery-NAME.png; `--gallery-only` saves just those, in seconds, to check a visual change of a
widget without a model or a training run.

Each shot drives the panels through their public parts (the views a panel is composed of, their widgets and
signals). A shot that cannot be made -- a panel not in the window, a part of it renamed or gone, work that does not
finish in time -- is never skipped: the tool names it with the reason and exits 1. The window reads and writes
private settings (a temporary folder), so the user's saved theme, tab or run folders never change a shot.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class ShotError(RuntimeError):
    """A shot cannot be made as the README shows it: its panel or a part of one is missing, or its work did not
    finish in time."""


def _wait(app, condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.02)
    return False


@dataclass
class Session:
    """The window the shots are taken of and what the shots share."""

    app: Any
    window: Any
    out: Path
    epochs: int
    settle: float
    saved: list[str] = field(default_factory=list)
    run_dirs: list[Path] = field(default_factory=list)     # the runs trained on the Train tab, in order
    vq_checkpoint: Path | None = None    # --vq: the VQ-VAE of the VQ shots; None: one is trained (vq_epochs)
    vq_epochs: int = 8
    scratch: Path | None = None          # a temporary folder for what the shots train outside the Train tab
    vq_entry: Any = None                 # the VQ-VAE in the window's models list, once opened

    def panel(self, key: str, *, show: bool = True):
        """The window's panel `key` (explorer/registry.py), brought to the front."""
        panel = self.window.panels.get(key)
        if panel is None:
            errors = "; ".join(f"{title}: {message}" for title, message in self.window.panel_errors.items())
            raise ShotError(f"the window has no {key!r} panel" + (f" (panels that failed: {errors})" if errors else ""))
        if show:
            self.window.tabs.setCurrentWidget(panel)
            # a bundled model the panel uses loads when it is first shown (explorer/bundled.py): shots show it loaded
            loading = self.window.state.loading
            self.until(lambda: not loading, 180, f"loading {', '.join(loading.values())}")
        return panel

    def until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        if not _wait(self.app, condition, timeout_s):
            raise ShotError(f"{what}: not within {timeout_s:.0f} s")

    def pause(self, seconds: float) -> None:
        _wait(self.app, lambda: False, seconds)

    def save(self, name: str) -> None:
        """The window as drawn, after the last redraws, as NAME.png."""
        self.pause(self.settle)
        if not self.window.grab().save(str(self.out / f"{name}.png")):
            raise ShotError(f"could not write {self.out / name}.png")
        self.saved.append(name)


# ---- the shots ------------------------------------------------------------------------------------------------------
def _latent_map(s: Session) -> None:
    """The test split's map as it first appears (PCA, while UMAP computes) with its first image inspected."""
    panel = s.panel("latent_map")
    s.until(lambda: panel.model.xy is not None, 180, "the latent map's first projection")
    panel.inspector.show_point(0)    # the side view: image, reconstruction, latent vector, neighbours
    if panel.model.selected != 0:
        raise ShotError("the map's inspector did not show image 0")
    s.save("latent-map")


def _sampler(s: Session) -> None:
    panel = s.panel("sampler")
    s.until(lambda: panel.images is not None and not panel.is_sampling(), 120, "the Sampler's grid")
    s.save("sampler")


def _interpolate(s: Session) -> None:
    panel = s.panel("interpolate")
    s.until(lambda: panel.strip is not None and not panel.tasks.busy(), 120, "the interpolation strip")
    s.save("interpolate")


def _restore(s: Session) -> None:
    """The Restore button pressed on test image 0: every restorer's result in the row (not "working...")."""
    panel = s.panel("restore")
    s.until(panel.run_button.isEnabled, 60, "the Restore button becoming enabled")
    panel.run_button.click()
    if not panel.busy():
        raise ShotError(f"Restore started nothing ({panel.status.text()!r})")
    s.until(lambda: not panel.busy(), 600, "restoring test image 0 with every restorer")
    if panel.status.text() != "done":
        raise ShotError(f"the restoration ended with {panel.status.text()!r}")
    s.save("restore")


def _dataset_browser(s: Session) -> None:
    """The Dataset tab with two saved views, the second applied: the test split's hard digits (not ones, error above
    0.004), worst reconstruction first."""
    panel = s.panel("dataset_browser")
    s.until(lambda: panel.columns is not None, 180, "the Dataset tab's encoding of the test split")
    for name, query in (("bad eights", "class 8 and error > 0.012"), ("hard digits", "not class 1 and error > 0.004")):
        panel.query.setText(query)
        panel.sort_box.setCurrentText("sort by error")
        panel.descending.setChecked(True)
        if not panel.saved_views.save(name):
            raise ShotError(f"the view {name!r} was not saved: {panel.status.text()}")
    panel.query.setText("")
    panel.apply()
    if not panel.saved_views.apply("hard digits"):
        raise ShotError(f"the saved view was not applied: {panel.status.text()}")
    s.save("dataset-browser")


def _latent_selection(s: Session) -> None:
    """The map of all splits with a lasso drawn around the zeros' cluster and its selection in the grid beside the
    map, worst reconstruction first. The lasso is the one a drag would draw (a wobbly loop holding about 150
    points), given to the selection tools as a finished drag gives it."""
    import numpy as np

    panel = s.panel("latent_map")
    model, tools, scatter = panel.model, panel.selection_tools, panel.map_view.scatter
    panel.map_view.split_box.setCurrentText("all")
    s.until(lambda: model.xy is not None and model.projection_shown == "umap" and not panel.tasks.busy(), 300,
            "the UMAP of all splits")
    xy, labels = model.xy.astype(np.float64), model.latents.labels
    centre = np.median(xy[labels == 0], axis=0)
    lo, hi = 0.0, float(np.ptp(xy, axis=0).max())
    for _ in range(30):                        # the radius that holds about 150 points
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if len(model.mapper.tree.query_ball_point(centre, mid)) < 150 else (lo, mid)
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    wobble = hi * (1.0 + 0.12 * np.sin(3 * t + 0.5) + 0.05 * np.sin(7 * t))
    outline = np.stack([centre[0] + wobble * np.cos(t), centre[1] + 0.9 * wobble * np.sin(t)], axis=1)
    tools.select_outline(outline)
    if not 50 <= len(tools.rows) <= 300:
        raise ShotError(f"the lasso selected {len(tools.rows)} points, not about 150")
    tools.grid.sort_box.setCurrentText("worst reconstruction first")
    scatter.view.show_outline(outline)
    try:
        s.save("latent-selection")
    finally:
        scatter.view.show_outline(None)


def _sampler_region(s: Session) -> None:
    """The lasso's selection sent to the Sampler ("more like these")."""
    sampler = s.panel("sampler", show=False)
    tools = s.panel("latent_map", show=False).selection_tools
    if len(tools.rows) < 2:
        raise ShotError("no selection on the latent map to send")
    tools.send("sampler")             # a hand-off through the state; the window shows the Sampler
    s.until(lambda: s.window.tabs.currentWidget() is sampler and sampler.region is not None
            and not sampler.is_sampling(), 120, "the Sampler's grid of the selection's region")
    s.save("sampler-region")


def _train(s: Session, **fields: dict[str, Any]) -> None:
    """Train on the Train tab with the form's settings changed by `fields` (form name -> {field: value})."""
    panel = s.panel("train")
    for form, values in fields.items():
        for name, value in values.items():
            getattr(panel, form).set_field(name, value)
    ended: list[str] = []

    def on_finished(status: str) -> None:
        ended.append(status)

    panel.runFinished.connect(on_finished)
    try:
        if not panel.start_training():
            raise ShotError(f"the Train tab did not start: {panel.form.problem()}")
        run_dir = Path(panel.job.run_dir)     # the job is gone once the run has ended
        s.until(lambda: bool(ended), 600, "the training run")
    finally:
        panel.runFinished.disconnect(on_finished)
    if ended != ["completed"]:
        raise ShotError(f"the training run ended {ended[0]!r}")
    s.run_dirs.append(run_dir)


def _train_shot(s: Session) -> None:
    _train(s, train_form={"epochs": s.epochs})
    s.panel("train").dashboard.redraw()
    s.save("train")


def _workspace(s: Session) -> None:
    """Two models side by side: the run just trained is shown everywhere, but the sampler pins the bundled model."""
    state = s.window.state
    run = next((e for e in state.models if e.source == "training"), None)
    bundled = next((e for e in state.models if e.source == "bundled" and e.kind == "vae"), None)
    if run is None or bundled is None:
        raise ShotError(f"needs a trained run and the bundled VAE in the models list; it has "
                        f"{[(e.name, e.source) for e in state.models]}")
    s.window.models_list.select(run)
    sampler = s.panel("sampler")
    combo = s.window.header.combos["vae"]
    combo.setCurrentIndex(combo.findData(bundled.id))
    s.until(lambda: sampler.state.vae is bundled.loaded and state.vae is run.loaded, 10,
            "the Sampler pinned to the bundled VAE while the run is shown")
    s.until(lambda: not sampler.is_sampling(), 120, "the pinned Sampler's grid")
    s.save("workspace")


def _runs(s: Session) -> None:
    """Runs compared: a second run with another beta, then both runs selected and compared in the Runs tab."""
    _train(s, vae_form={"beta": 2.0})
    panel = s.panel("runs")
    wanted = s.run_dirs[-2:]
    s.until(lambda: {Path(r.path) for r in panel.runs} >= set(wanted), 60, "the Runs tab listing the two runs")
    panel.select_paths([next(r.path for r in panel.runs if Path(r.path) == p) for p in wanted])
    panel.compare_selected()
    s.until(lambda: len(panel.compared) == 2 and not panel.tasks.busy("compare"), 60, "comparing the two runs")
    s.save("runs")


def _vq_shown(s: Session) -> Any:
    """The VQ-VAE of the VQ shots, shown in every panel (opened once, as File > Open checkpoint does): `--vq
    CHECKPOINT`, or else the digits-vq preset trained for `--vq-epochs` epochs in a temporary folder (a few seconds
    on a CPU, seed 0; the shown dataset's own splits)."""
    from core.errors import UserError
    from core.training.checkpoint import load_model

    if s.vq_entry is None:
        path = s.vq_checkpoint or _train_vq(s)
        try:
            loaded = load_model(path)
        except UserError as e:
            raise ShotError(f"--vq {path}: {e}") from None
        if loaded.config.model_kind != "vqvae":
            raise ShotError(f"--vq {path} is a {loaded.config.model_kind} checkpoint, not a VQ-VAE")
        s.vq_entry = s.window.state.set_model(loaded)
    s.window.models_list.select(s.vq_entry)
    return s.vq_entry.loaded


def _train_vq(s: Session) -> Path:
    import dataclasses

    from core.config import preset
    from core.training.trainer import Trainer

    config = preset("digits-vq")
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, epochs=s.vq_epochs, seed=0,
                                                                   preview_every=0))
    dataset = s.window.state.dataset
    if dataset is None or dataset.meta.name != config.data.name or dataset.meta.image_size != config.data.image_size:
        raise ShotError(f"training digits-vq needs the {config.data.image_size}-px digits loaded; the window has "
                        f"{None if dataset is None else dataset.meta.name}")
    run_dir = s.scratch / "digits-vq"
    last = None
    for last in Trainer(config, run_dir=run_dir, dataset=dataset).run():  # noqa: B007 (the last event says how it ended)
        s.app.processEvents()        # the window stays drawn while it trains
    if last is None or last.status != "completed":
        raise ShotError(f"training digits-vq for {s.vq_epochs} epochs ended {getattr(last, 'status', None)!r}")
    return run_dir / "checkpoints" / "best.safetensors"


def _codes(s: Session) -> None:
    """The Codes tab with the VQ-VAE: the first "3" of the test split with two cells repainted with the code the
    split uses most (of those not already there)."""
    import numpy as np

    _vq_shown(s)
    panel = s.panel("codes")
    m = panel.model
    s.until(lambda: m.usage is not None and m.looks is not None and not panel.tasks.busy(), 120,
            "the Codes tab's codebook usage")
    labels = s.window.state.dataset.split("test").labels.cpu().numpy()
    panel.pick("test", int(np.flatnonzero(labels == 3)[0]))
    cells = [(1, 2), (2, 2)]
    code = next(int(k) for k in np.argsort(-m.usage) if all(m.codes[c] != k for c in cells))
    panel.palette.setCurrentRow(code)              # the brush, as a click on its tile picks it
    for cell in cells:
        m.paint(*cell)                             # as a click on the cell paints it
    if m.edited_cells() != len(cells):
        raise ShotError(f"painting {len(cells)} cells changed {m.edited_cells()}")
    s.save("codes")


def _latent_map_vq(s: Session) -> None:
    """The latent map of the VQ-VAE: the PCA of its codebook (test split), the code with the largest share of one
    class among the codes used at least as much as the median code inspected, and the codes of the second image
    using it ringed (a click on it)."""
    import numpy as np

    _vq_shown(s)
    panel = s.panel("latent_map")
    book = panel.codebook
    panel.map_view.split_box.setCurrentText("test")
    panel.map_view.method_box.setCurrentText("PCA")
    s.until(lambda: book.active and book.use is not None and book.xy is not None and book.method_shown == "pca"
            and not panel.tasks.busy(), 120, "the PCA of the VQ-VAE's codebook")
    use = book.use
    well_used = use.cells >= np.median(use.cells)
    code = int(np.argmax(np.where(well_used, use.class_share(), -1.0)))
    book.show_code(code)
    if book.selected != code or len(book.shown_rows) < 2:
        raise ShotError(f"code {code} shows {len(book.shown_rows)} images using it, not 2 or more")
    book.inspector.images.clicked.emit(1)          # as a click on the second image picks it: its codes ringed
    s.save("latent-map-vq")


def _latent_map_dark(s: Session) -> None:
    """The latent map in the dark look (View > Dark look): the bundled VAE's PCA of the test split, the first image
    inspected. The light look is put back afterwards."""
    state = s.window.state
    bundled = next((e for e in state.models if e.source == "bundled" and e.kind == "vae"), None)
    if bundled is None:
        raise ShotError("the bundled VAE is not in the models list")
    s.window.models_list.select(bundled)
    s.window.theme_actions["dark"].trigger()
    try:
        panel = s.panel("latent_map")
        panel.map_view.split_box.setCurrentText("test")
        panel.map_view.method_box.setCurrentText("PCA")
        s.until(lambda: state.vae is bundled.loaded and panel.model.xy is not None
                and panel.model.projection_shown == "pca" and not panel.tasks.busy(), 120,
                "the PCA of the bundled VAE's test split")
        panel.inspector.show_point(0)
        s.save("latent-map-dark")
    finally:
        s.window.theme_actions["light"].trigger()


# name -> (the step that saves NAME.png, the shots whose state it builds on); made in this order
SHOTS: dict[str, tuple[Callable[[Session], None], tuple[str, ...]]] = {
    "latent-map": (_latent_map, ()),
    "sampler": (_sampler, ()),
    "interpolate": (_interpolate, ()),
    "restore": (_restore, ()),
    "dataset-browser": (_dataset_browser, ()),
    "latent-selection": (_latent_selection, ()),
    "sampler-region": (_sampler_region, ("latent-selection",)),
    "train": (_train_shot, ()),
    "workspace": (_workspace, ("train",)),
    "runs": (_runs, ("train",)),
    "codes": (_codes, ()),
    "latent-map-vq": (_latent_map_vq, ()),
    "latent-map-dark": (_latent_map_dark, ()),
}


def _shoot(s: Session, names: list[str]) -> dict[str, str]:
    """Make the shots `names` (in SHOTS' order); returns name -> why, for each that could not be made."""
    failed: dict[str, str] = {}
    for name, (step, needs) in SHOTS.items():
        if name not in names:
            continue
        try:
            missing = [n for n in needs if n in failed]
            if missing:
                raise ShotError("it builds on " + ", ".join(f"{n}.png" for n in missing) + ", which could not be made")
            step(s)
            if name not in s.saved:
                raise ShotError("its step saved no picture")
        except ShotError as e:
            failed[name] = str(e)
        except (AttributeError, KeyError) as e:   # a panel's part renamed or gone: the shot names it
            failed[name] = f"a part it uses is missing ({type(e).__name__}: {e})"
    return failed


def _open_window(app):
    """The main window on the bundled digits and models (ShotError when they do not load)."""
    from explorer.main_window import MainWindow
    from explorer.state import AppState

    state = AppState()
    window = MainWindow(state, defer_panels=True)
    window.resize(1400, 900)
    window.show()
    window.load_initial()
    if not _wait(app, lambda: state.vae is not None and state.dataset is not None, 180):
        window.close()
        raise ShotError("the bundled model or dataset did not load")
    return window


def _window_shots(app, names: list[str], args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    """The shots `names` of the window with the bundled models: (those saved, name -> why for the others)."""
    try:
        window = _open_window(app)
    except ShotError as e:
        return [], dict.fromkeys(names, str(e))
    with tempfile.TemporaryDirectory(prefix="vae-explorer-shots-") as scratch:
        session = Session(app, window, args.out, args.epochs, args.settle, vq_checkpoint=args.vq,
                          vq_epochs=args.vq_epochs, scratch=Path(scratch))
        try:
            failed = _shoot(session, names)
        finally:
            window.close()
            app.processEvents()
    return session.saved, failed


def _gallery_shots(app, out: Path) -> list[str]:
    """The widget gallery's examples (explorer/gallery.py): each pure widget on synthetic data, no model needed."""
    from explorer.gallery import EXAMPLES, shot

    for name in EXAMPLES:
        shot(name, str(out / f"gallery-{name}.png"), app)
    return [f"gallery-{name}" for name in EXAMPLES]


def _wanted(only: str | None, parser: argparse.ArgumentParser) -> list[str]:
    """The shots `--only` names with those they build on (all of them without `--only`)."""
    if only is None:
        return list(SHOTS)
    names = [n.strip().removesuffix(".png") for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SHOTS]
    if unknown or not names:
        parser.error(f"--only: no shot named {', '.join(unknown) or repr(only)}; the shots: {', '.join(SHOTS)}")
    wanted = set(names)
    for name in names:
        wanted.update(SHOTS[name][1])
    return [n for n in SHOTS if n in wanted]


def _private_settings() -> tempfile.TemporaryDirectory:
    """QSettings in a temporary folder: the user's saved theme, tab, geometry and run folders change no shot, and
    the shots change none of them."""
    from PySide6.QtCore import QSettings

    folder = tempfile.TemporaryDirectory(prefix="vae-explorer-screenshots-")
    QSettings.setDefaultFormat(QSettings.Format.IniFormat)
    for scope in (QSettings.Scope.UserScope, QSettings.Scope.SystemScope):
        QSettings.setPath(QSettings.Format.IniFormat, scope, folder.name)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m explorer.screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--epochs", type=int, default=3, help="epochs of the digits preset trained on the Train tab")
    parser.add_argument("--settle", type=float, default=0.5,
                        help="seconds a shot waits, once its panel's work is done, for the last redraws")
    parser.add_argument("--only", metavar="NAME,...", help="only these shots: " + ", ".join(SHOTS))
    parser.add_argument("--vq", type=Path, metavar="CHECKPOINT",
                        help="the VQ-VAE of the codes and latent-map-vq shots (default: train the digits-vq preset "
                             "for --vq-epochs epochs in a temporary folder)")
    parser.add_argument("--vq-epochs", type=int, default=8, help="epochs of digits-vq trained when --vq is not given")
    parser.add_argument("--gallery", action="store_true", help="also the widget gallery's examples (gallery-NAME.png)")
    parser.add_argument("--gallery-only", action="store_true",
                        help="only the widget gallery's examples (seconds; no model, no training)")
    args = parser.parse_args(argv)
    if args.vq is not None and not args.vq.is_file():
        parser.error(f"--vq: no file {args.vq}")
    if args.vq_epochs < 1:
        parser.error("--vq-epochs: at least 1")
    names = [] if args.gallery_only else _wanted(args.only, parser)
    args.out.mkdir(parents=True, exist_ok=True)

    from PySide6.QtWidgets import QApplication

    settings = _private_settings()
    app = QApplication.instance() or QApplication([])
    saved, failed = _window_shots(app, names, args) if names else ([], {})
    if args.gallery or args.gallery_only:
        saved += _gallery_shots(app, args.out)
    settings.cleanup()
    if saved:
        print("saved", ", ".join(f"{n}.png" for n in saved), "in", args.out)
    for name, why in failed.items():
        print(f"could not make {name}.png: {why}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
