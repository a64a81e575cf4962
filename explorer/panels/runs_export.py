"""The Runs tab's outputs: the runs (or the compared curves) as CSV, the self-contained HTML report, and opening it.

Every output path goes through core's guard (`core.runs.export.check_export_file`, the CLI's `check_output_file`):
a run's own records (metrics.jsonl, config.json, checkpoints/, samples/) are never overwritten, a wrong suffix or a
name too long is one clear line. "Open report" opens the newest report in the browser, or shows its path with a
Copy button when no browser opens (explorer/widgets/path_dialog.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from core.errors import UserError
from core.runs.history import RunSummary
from explorer.panels.tasks import PanelTasks
from explorer.widgets.dialogs import show_error
from explorer.widgets.path_dialog import PathDialog, open_or_show_path


class RunsExports(QObject):
    reportWritten = Signal(object)    # the report's Path

    def __init__(self, owner: QWidget, tasks: PanelTasks, status: Callable[[str], None],
                 selected: Callable[[], list[RunSummary]], listed: Callable[[], list[RunSummary]],
                 compared: Callable[[], list[RunSummary]]) -> None:
        super().__init__(owner)
        self._owner, self._tasks, self._status = owner, tasks, status
        self._selected, self._listed, self._compared = selected, listed, compared
        self.report_path: Path | None = None

    # ---- CSV --------------------------------------------------------------------------------------------------------
    def export_csv(self, path: str) -> Path:
        """The selected runs (else every listed one) as CSV; a name ending in -curves.csv: the compared runs' curves.
        A UserError when the path is refused (a run's own record, a wrong suffix ...)."""
        from core.runs.export import check_export_file, write_runs_csv, write_series_csv

        out = check_export_file(path, what="Export CSV:", suffixes=(".csv",))
        compared = self._compared()
        if compared and path.endswith("-curves.csv"):
            return write_series_csv([r.path for r in compared], out)
        return write_runs_csv(self._selected() or self._listed(), out)

    def ask_csv(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._owner, "Export runs as CSV (name it *-curves.csv for the "
                                              "compared curves)", "runs.csv", "CSV (*.csv)")
        if path:
            try:
                self._status(f"wrote {self.export_csv(path)}")
            except UserError as e:
                show_error(self._owner, str(e))
            except OSError as e:
                show_error(self._owner, f"Could not write {path}: {e.strerror or e}")

    # ---- report -----------------------------------------------------------------------------------------------------
    def report_runs(self) -> list[Path]:
        """The runs a report covers: the selected readable ones, else the compared ones."""
        runs = [r for r in self._selected() if r.status != "unreadable"] or self._compared()
        if not runs:
            raise UserError("select one or more runs to report on")
        return [r.path for r in runs]

    def write_report(self, path: str) -> Path:
        from core.runs.export import check_export_file
        from core.runs.report import write_report

        out = check_export_file(path, what="Report:", suffixes=(".html", ".htm"))
        written = write_report(self.report_runs(), out)
        self._on_report(written)
        return written

    def ask_report(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self._owner, "Save the report", "report.html", "HTML (*.html)")
        if not path:
            return
        from core.runs.export import check_export_file
        from core.runs.report import write_report

        try:
            out = check_export_file(path, what="Report:", suffixes=(".html", ".htm"))
            runs = self.report_runs()
        except UserError as e:
            show_error(self._owner, str(e))
            return
        # Reading every record and embedding the grids takes a while for long runs: on a worker.
        self._tasks.start("report", write_report, runs, out, status=self._status, on_result=self._on_report)

    def _on_report(self, written: Path) -> None:
        self.report_path = Path(written)
        self._status(f"wrote {written}")
        self.reportWritten.emit(self.report_path)

    def open_report(self) -> PathDialog | None:
        """The newest report in the browser; when none opens, its path with a Copy button (the dialog, returned)."""
        if self.report_path is None:
            return None
        return open_or_show_path(self._owner, self.report_path, what="the report")
