"""Panel settings that persist: one helper, one home for every key (issue 21).

A panel keeps what the user chose (a projection method, a temperature, a sampler source, a corruption, the last
dataset) with `state.settings.value("latent_map.projection", "pca")` and `state.settings.set_value(...)`; the keys
are "<panel>.<name>" so two panels never share one by accident. The values live in the workspace (explorer/
workspace.py): saved on quit, restored on launch, and carried by File > Save workspace as... to a colleague.
A value read back is checked against the default's type: a file edited by hand gives the default, never a crash.

A panel binds an editor to its key with `Persisted` (a few lines in the panel's `__init__`).

The folders of runs are the user's, not a workspace's (QSettings, kept across workspaces), one key per panel that
writes them: the folders added in the Runs tab, and the output folders of the Experiments tab's experiments; the Runs
tab lists both. (Both tabs once wrote one shared key, "runs/folders"; its folders become the Runs tab's own the first
time they are read, so none is lost.)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QSettings, Signal, SignalInstance

JSON_SCALARS = (str, int, float, bool)
RUNS_TAB_FOLDERS = "runs/added_folders"             # written by the Runs tab ("Add folder...")
EXPERIMENT_FOLDERS = "experiments/output_folders"   # written by the Experiments tab (each experiment's output)
SHARED_RUNS_FOLDERS = "runs/folders"                # the key both tabs wrote before; read once, then removed


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


# ---- folders of runs (QSettings: the user's, across workspaces) ------------------------------------------------------
def _folders(settings: QSettings, key: str) -> list[str]:
    value = settings.value(key, []) or []
    return [value] if isinstance(value, str) else [str(v) for v in value]   # QSettings gives one item as a str


def _add_folder(settings: QSettings, key: str, folder: str) -> None:
    """`folder` at the end of the list under `key` (moved there when it is already in it)."""
    settings.setValue(key, [*(f for f in _folders(settings, key) if f != str(folder)), str(folder)])


def runs_tab_folders(settings: QSettings) -> list[str]:
    """The folders the user added in the Runs tab. The first read takes over the old shared key's folders (those
    added in the Runs tab and by experiments alike: the Runs tab listed them all) and removes that key."""
    if settings.contains(SHARED_RUNS_FOLDERS):
        merged = dict.fromkeys([*_folders(settings, RUNS_TAB_FOLDERS), *_folders(settings, SHARED_RUNS_FOLDERS)])
        settings.setValue(RUNS_TAB_FOLDERS, list(merged))
        settings.remove(SHARED_RUNS_FOLDERS)
    return _folders(settings, RUNS_TAB_FOLDERS)


def add_runs_tab_folder(settings: QSettings, folder: str) -> None:
    runs_tab_folders(settings)     # the old key's folders first, so adding one loses none of them
    _add_folder(settings, RUNS_TAB_FOLDERS, folder)


def experiment_folders(settings: QSettings) -> list[str]:
    """The output folders of the experiments run in the Experiments tab (the Runs tab lists their runs too)."""
    return _folders(settings, EXPERIMENT_FOLDERS)


def add_experiment_folder(settings: QSettings, folder: str) -> None:
    if str(folder) not in experiment_folders(settings):
        _add_folder(settings, EXPERIMENT_FOLDERS, folder)
