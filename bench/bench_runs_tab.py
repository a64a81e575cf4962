"""How the Runs tab behaves with many run folders, some damaged: the read on the worker, the table fill on the GUI
thread, and the GUI thread's longest stall while a refresh runs (a 5 ms timer's worst gap).

    QT_QPA_PLATFORM=offscreen python bench/bench_runs_tab.py [--n 500]

Trains one tiny run with the CLI, copies its folder N times (every 10th with a damaged record, one with a 20 MB line),
then refreshes the Runs panel three times. Prints the numbers; nothing is asserted (wall-clock targets live here,
not in tests). Everything is written to a temporary folder, removed at the end.
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


def make_runs(root: Path, n: int) -> None:
    from core import cli

    first = root / "run-000"
    assert cli.main(["train", "--epochs", "2", "--per-class", "10", "--batch-size", "32", "--set", "model.width=4",
                     "--set", "model.latent_dim=2", "--set", "model.stages=1", "--quiet", "--out", str(first)]) == 0
    for i in range(1, n):
        run = Path(shutil.copytree(first, root / f"run-{i:03d}"))
        if i % 10 == 0:
            with open(run / "metrics.jsonl", "ab") as f:
                f.write(b'{"type": "epoch", "epoch": "one"}\n')
    with open(root / "run-001" / "metrics.jsonl", "ab") as f:
        f.write(b"x" * (20 << 20) + b"\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["VAE_EXPLORER_HOME"] = tmp
        from PySide6.QtCore import QCoreApplication, QSettings, QTimer
        from PySide6.QtWidgets import QApplication

        QCoreApplication.setOrganizationName("vae-explorer-bench")
        QSettings.setPath(QSettings.Format.IniFormat, QSettings.Scope.UserScope, tmp)
        QSettings.setDefaultFormat(QSettings.Format.IniFormat)
        app = QApplication([])
        from core.paths import runs_dir
        from core.runs.history import find_runs
        from explorer.panels.runs import RunsPanel
        from explorer.state import AppState

        root = runs_dir()
        root.mkdir(parents=True, exist_ok=True)
        make_runs(root, args.n)
        t = time.perf_counter()
        runs = find_runs([root])
        read_s = time.perf_counter() - t
        panel = RunsPanel(AppState())
        fills = []
        for _ in range(3):
            t = time.perf_counter()
            panel.table_view.set_runs(runs)
            fills.append(time.perf_counter() - t)
        panel.resize(1280, 800)
        gaps, last = [], [time.perf_counter()]

        def tick() -> None:
            now = time.perf_counter()
            gaps.append(now - last[0])
            last[0] = now

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(5)
        panel.show()
        for _ in range(3):
            while panel.tasks.busy("runs"):
                app.processEvents()
            last[0] = time.perf_counter()
            panel.refresh()
            while panel.tasks.busy("runs"):
                app.processEvents()
                time.sleep(0.001)
        timer.stop()
        damaged = sum(1 for r in panel.runs if r.damaged)
        print(f"{len(runs)} runs ({damaged} with damaged records, 1 with a 20 MB line): find_runs {read_s:.2f} s "
              f"(worker); table fill on the GUI thread median {statistics.median(fills) * 1000:.0f} ms; "
              f"during 3 refreshes the GUI thread's longest gap {max(gaps) * 1000:.0f} ms "
              f"(median {statistics.median(gaps) * 1000:.1f} ms); on screen: {panel.table_view.damage.text()!r}")
        panel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
