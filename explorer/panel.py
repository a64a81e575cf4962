"""What a panel declares about itself (DESIGN.md: nothing is found by string tables or `hasattr`).

A panel is a QWidget that also derives from `Panel` (mixed in before QWidget) and says, as class attributes:

- `title`: its tab's text;
- `uses`: the model kinds it shows ("vae", "diffusion"); the header above it offers a pin for each;
- `takes_view`: True when it is built with a `PanelView` (the app's models, or the ones pinned for it alone); False
  when it is built with the `AppState` itself (it trains or opens runs: it writes to the app's models list);
- `accepts`: the hand-offs it takes (explorer/handoffs.py targets: "sampler", "interpolate", "restore").

and offers `shutdown()` (stop and join its background work; window close) and `export_png(path)` (File > Export
current view; by default the panel as shown). To add a panel, see README.md's Architecture section.
"""

from __future__ import annotations

from typing import ClassVar

from core.errors import UserError


class Panel:
    title: ClassVar[str] = ""
    uses: ClassVar[tuple[str, ...]] = ()
    takes_view: ClassVar[bool] = True
    accepts: ClassVar[tuple[str, ...]] = ()

    def shutdown(self) -> None:
        """Stop this panel's background work and wait for it (the window is closing). Nothing to stop by default."""

    def export_png(self, path: str) -> None:
        """Write what the panel shows as a PNG (File > Export current view); by default, the panel as drawn."""
        if not self.grab().save(str(path), "PNG"):   # type: ignore[attr-defined]
            raise UserError(f"could not write {path}; choose a writable folder")
