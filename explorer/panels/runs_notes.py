"""The selected run's tags and note, edited under the Runs table (W&B's run tags and notes).

The editor only says what the user typed (`saveRequested(path, RunNotes)`); the panel writes `notes.json` on a worker
(`core.runs.tags.write_notes`: atomic, beside the run's records, never its lock). While the user types, the periodic
refresh of the table does not overwrite the text.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from core.errors import UserError
from core.runs.history import RunSummary
from core.runs.tags import RunNotes, parse_tags
from explorer.widgets.dialogs import show_error


class RunNotesEditor(QWidget):
    saveRequested = Signal(object, object)    # (run folder Path, RunNotes)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.path: Path | None = None
        self.edited = False
        self.tags = QLineEdit()
        self.tags.setPlaceholderText("tags: baseline, sweep ...")
        self.tags.setToolTip("Tags of the selected run, separated by commas or spaces; filter with tag:NAME")
        self.note = QLineEdit()
        self.note.setPlaceholderText("a note on the selected run")
        self.save_button = QPushButton("Save tags")
        self.save_button.setToolTip("Saved in the run folder's notes.json (its records are not touched)")
        self.save_button.clicked.connect(self.save)
        for edit in (self.tags, self.note):
            edit.textEdited.connect(self._on_edit)
            edit.returnPressed.connect(self.save)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(QLabel("Tags"))
        lay.addWidget(self.tags, 1)
        lay.addWidget(QLabel("Note"))
        lay.addWidget(self.note, 2)
        lay.addWidget(self.save_button)
        self.set_run(None)

    def set_run(self, run: RunSummary | None) -> None:
        """Show this run's tags and note (None: no single run selected). The user's unsaved text for the same run is
        kept (a refresh of the table brings the same run again every few seconds)."""
        path = Path(run.path) if run is not None else None
        if path == self.path and self.edited:
            return
        self.path, self.edited = path, False
        self.tags.setText(", ".join(run.tags) if run is not None else "")
        self.note.setText(run.note if run is not None else "")
        for w in (self.tags, self.note, self.save_button):
            w.setEnabled(run is not None)
        self.save_button.setText("Save tags")

    def _on_edit(self) -> None:
        self.edited = True
        self.save_button.setText("Save tags *")

    def notes(self) -> RunNotes:
        """What is typed, as tags and a note; a UserError for tags that cannot be tags."""
        return RunNotes(parse_tags(self.tags.text()), self.note.text().strip())

    def save(self) -> None:
        if self.path is None:
            return
        try:
            notes = self.notes()
        except UserError as e:
            show_error(self, str(e))
            return
        self.edited = False
        self.save_button.setText("Save tags")
        self.saveRequested.emit(self.path, notes)
