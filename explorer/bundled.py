"""Bundled models that are loaded when a panel first needs one, not at launch.

The bundled DDPM is 1.3 MB of weights, but building its network imports diffusers (with huggingface_hub, sympy,
triton and scipy): ~350 MiB of a 1,053 MiB launch (bench/bench_launch_memory.py). Start-up (explorer/startup.py)
leaves it here instead; the window calls `need(panel.uses)` whenever a tab is shown, and the first panel that uses a
diffusion model (Sampler, Denoise/Enhance) starts loading it on a worker. Meanwhile `state.loading` says so: the panel
header's "shown" item and the status bar read "loading the bundled diffusion model…" rather than "none". It joins the
models list as "bundled" when it arrives, shown unless the user showed another model of its kind meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject

from explorer.worker import Worker

if TYPE_CHECKING:
    from explorer.state import AppState


def _load(path: str) -> Any:
    from core.training.checkpoint import load_model  # on the worker thread: diffusers is imported here

    return load_model(path)


class DeferredModels(QObject):
    def __init__(self, state: AppState, run_worker: Callable[[Worker], Worker],
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self._run_worker = run_worker
        self.pending: dict[str, Path] = {}      # kind -> bundled checkpoint not loaded yet
        self.loaded = 0                         # how many were loaded (a test counts them)

    def add(self, kind: str, path: Path) -> None:
        self.pending[kind] = Path(path)

    def defers(self, path: str | Path) -> bool:
        """Whether `path` is a bundled model waiting here (a saved workspace names it: it is not loaded at launch)."""
        resolved = Path(path).resolve()
        return any(p.resolve() == resolved for p in self.pending.values())

    def need(self, uses: tuple[str, ...]) -> None:
        """The panel on screen uses these model kinds: load each pending one it has nothing shown for."""
        for kind in uses:
            path = self.pending.get(kind)
            if path is None or kind in self.state.loading or self.state.shown.get(kind) is not None:
                continue
            self.state.set_loading(kind, f"loading the bundled {kind} model…")
            worker = self._run_worker(Worker(_load, str(path), task=f"bundled {kind}"))
            worker.result.connect(lambda loaded, k=kind: self._arrived(k, loaded))
            worker.finished.connect(lambda k=kind: self._finished(k))

    def _arrived(self, kind: str, loaded: Any) -> None:
        self.loaded += 1
        self.state.add_model(loaded, source="bundled", show=self.state.shown.get(kind) is None)

    def _finished(self, kind: str) -> None:
        """Loaded or failed (the window's error dialog said why): either way it is not tried again."""
        self.pending.pop(kind, None)
        self.state.set_loading(kind, "")
