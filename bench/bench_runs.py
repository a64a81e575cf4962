"""How long the runs view takes to list many run folders: `find_runs` over N copies of a real 2-epoch run.

    python bench/bench_runs.py [--n 200]

Trains one tiny run with the CLI, copies its folder N times (run folders are what the CLI and the GUI write), then
times `core.runs.history.find_runs` over them (median of 5) and `load_series` of one run. Target: 200 runs < 1 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from core import cli  # noqa: E402
from core.runs.history import find_runs, load_series  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VAE_EXPLORER_HOME"] = str(Path(tmp) / "home")
        first = Path(tmp) / "runs" / "run-000"
        code = cli.main(["train", "--epochs", "2", "--per-class", "20", "--set", "model.width=8", "--set",
                         "model.stages=2", "--out", str(first), "--quiet"])
        if code != 0:
            return code
        for i in range(1, args.n):
            shutil.copytree(first, first.with_name(f"run-{i:03d}"))
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            runs = find_runs([first.parent])
            times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        series = load_series(first)
        t_series = time.perf_counter() - t0
        size = sum(f.stat().st_size for f in first.rglob("*") if f.is_file()) / 2**20
        print(f"{len(runs)} run folders ({size:.1f} MiB each, checkpoints included): find_runs median "
              f"{statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}); "
              f"target < 1000 ms")
        print(f"load_series of one run: {t_series * 1000:.1f} ms ({len(series)} series)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
