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
