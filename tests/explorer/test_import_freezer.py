"""Modules imported after start-up (a first training run imports ~900) go out of the collector's generations, so a
full collection does not walk them again every few seconds (explorer/memory.py ImportFreezer)."""

from __future__ import annotations

import gc
import sys
import types

from explorer.memory import ImportFreezer


def _import_new(n: int, tag: str) -> list[str]:
    """Import n new modules (each defines functions and a class, as real modules do); their names."""
    names = []
    for i in range(n):
        name = f"_freezer_test_{tag}_{i}"
        module = types.ModuleType(name)
        exec("def f(x):\n    return x\nclass C:\n    def m(self):\n        return f(self)\n", module.__dict__)
        sys.modules[name] = module
        names.append(name)
    return names


def test_new_modules_are_frozen_once_enough_arrive():
    freezer = ImportFreezer(min_new_modules=5)
    frozen_before = gc.get_freeze_count()
    names: list[str] = []
    try:
        assert not freezer.check()                         # nothing new: no freeze
        names += _import_new(2, "a")
        assert not freezer.check()
        assert freezer.freezes == 0 and gc.get_freeze_count() == frozen_before
        names += _import_new(6, "b")
        assert freezer.check()
        assert freezer.freezes == 1
        assert gc.get_freeze_count() > frozen_before       # what they created left the generations
        assert not freezer.check()                         # counted from this freeze on
        module_class = sys.modules[names[-1]].C
        assert not gc.is_tracked(module_class) or module_class not in gc.get_objects()   # frozen: not in a generation
    finally:
        gc.unfreeze()
        for name in names:
            sys.modules.pop(name, None)
