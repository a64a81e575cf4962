"""Panel settings that persist: one helper, one home for every key (issue 21).

A panel keeps what the user chose (a projection method, a temperature, a sampler source, a corruption, the last
dataset) with `state.settings.value("latent_map.projection", "pca")` and `state.settings.set_value(...)`; the keys
are "<panel>.<name>" so two panels never share one by accident. The values live in the workspace (explorer/
workspace.py): saved on quit, restored on launch, and carried by File > Save workspace as... to a colleague.
A value read back is checked against the default's type: a file edited by hand gives the default, never a crash.

A panel binds an editor to its key with `Persisted` (a few lines in the panel's `__init__`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal, SignalInstance

JSON_SCALARS = (str, int, float, bool)


def is_json_value(value: Any) -> bool:
    """A value JSON keeps as it is: str, int, float, bool, None, and lists / string-keyed dicts of them."""
    if value is None or isinstance(value, JSON_SCALARS):
        return True
    if isinstance(value, (list, tuple)):
        return all(is_json_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v) for k, v in value.items())
    return False


class PanelSettings(QObject):
    replaced = Signal()    # a workspace was opened: every value may differ; a panel re-reads what it shows

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._values: dict[str, Any] = {}

    def value(self, key: str, default: Any) -> Any:
        """The stored value of `key`, or `default` when there is none or it is not of the default's type (an int
        where a float is expected is accepted)."""
        _check_key(key)
        stored = self._values.get(key, default)
        if default is None or stored is default:
            return stored
        if isinstance(default, float) and isinstance(stored, int) and not isinstance(stored, bool):
            return float(stored)
        if type(stored) is not type(default):
            return default
        return stored

    def set_value(self, key: str, value: Any) -> None:
        _check_key(key)
        if not is_json_value(value):
            raise TypeError(f"setting {key!r}: {type(value).__name__} is not kept in a workspace file (JSON values "
                            "only: str, int, float, bool, None, lists and dicts of them)")
        self._values[key] = list(value) if isinstance(value, tuple) else value

    def remove(self, key: str) -> None:
        self._values.pop(key, None)

    def to_dict(self) -> dict[str, Any]:
        return dict(self._values)

    def replace(self, values: dict[str, Any]) -> None:
        """Every value from a workspace (invalid entries are left out), then `replaced`."""
        self._values = {k: v for k, v in values.items() if isinstance(k, str) and "." in k and is_json_value(v)}
        self.replaced.emit()


class Persisted(QObject):
    """One editor's choice kept under `key`: read when the panel is built and again when a workspace is opened
    (`replaced`), written on each change. Parented to the editor, so it goes with it (and its connections too).
    `set_` gets the stored value (of the default's type) and may ignore one it cannot show."""

    def __init__(self, settings: PanelSettings, key: str, default: Any, *, get: Callable[[], Any],
                 set_: Callable[[Any], None], changed: SignalInstance, owner: QObject) -> None:
        super().__init__(owner)
        _check_key(key)
        self.settings, self.key, self.default, self._get, self._set = settings, key, default, get, set_
        self.read()
        changed.connect(self.write)
        settings.replaced.connect(self.read)

    def read(self) -> None:
        self._set(self.settings.value(self.key, self.default))

    def write(self, *_changed: object) -> None:
        self.settings.set_value(self.key, self._get())


def _check_key(key: str) -> None:
    if not isinstance(key, str) or "." not in key.strip("."):
        raise ValueError(f"setting key {key!r}: use '<panel>.<name>', e.g. 'sampler.temperature'")
