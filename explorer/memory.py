"""Keeping a long session's resident memory flat (glibc only; a no-op elsewhere).

Measured with bench/bench_memory_soak.py: a 30-minute GUI training grew RSS by 5.9% after the first epoch, in steps
at each visit to the latent map or sampler, while Python's own heap stayed flat. The worker threads' encode, UMAP
and sampling jobs allocate in per-thread malloc arenas (up to 8 per core) and glibc keeps their freed pages. Two
arenas are enough for our few threads, and an occasional `malloc_trim` gives freed pages back to the system.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8   # mallopt parameter (glibc's malloc.h)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """At start-up, before worker threads exist: at most `arenas` malloc arenas. True when glibc took it."""
    libc = _libc()
    return bool(libc is not None and hasattr(libc, "mallopt") and libc.mallopt(M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Hand freed heap pages back to the system (a few ms); True when glibc released some."""
    libc = _libc()
    return bool(libc is not None and hasattr(libc, "malloc_trim") and libc.malloc_trim(0))


class ImportFreezer:
    """Keeps what imports create (modules' functions, classes, typing objects) out of the collector's generations.

    Why: the window freezes what start-up loaded (MainWindow.load_initial). The first training run then imports
    ~900 more modules (torch's compiler stack, sympy, triton: ~150,000 objects), and every full collection walked them
    again: 50-90 ms with the GIL held, every ~8 s of training, each a stall of the GUI thread
    (bench/bench_gui_responsiveness.py; gc callbacks timed). `check()` (cheap: a length compare) freezes once the
    module count has grown by `min_new_modules`: a young-generation collection first (1-5 ms), then `gc.freeze()`.
    Cost: cyclic garbage that had already reached the oldest generation at that moment is never collected; freezes
    happen only when new modules arrive (a few times a session), so that stays small.
    """

    def __init__(self, min_new_modules: int = 20) -> None:
        self.min_new_modules = min_new_modules
        self.modules_at_freeze = len(sys.modules)
        self.freezes = 0

    def check(self) -> bool:
        """Freeze if enough modules arrived since the last freeze; True when it did."""
        if len(sys.modules) - self.modules_at_freeze < self.min_new_modules:
            return False
        import gc

        gc.collect(1)
        gc.freeze()
        self.modules_at_freeze = len(sys.modules)
        self.freezes += 1
        return True
