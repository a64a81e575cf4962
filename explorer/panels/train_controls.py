"""The Train panel's run controls: Train, Pause / Resume, Stop and "Resume from checkpoint...".

The buttons only say what the user asked for (`trainClicked`, `pauseClicked`, `stopClicked`, `resumeChosen(path)`
after the file dialog); `show_state()` sets what is offered from the panel's run state. Hidden while a run folder is
followed: that run belongs to the process writing it.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QGridLayout, QPushButton, QWidget


class RunControls(QWidget):
    trainClicked = Signal()
    pauseClicked = Signal()
    stopClicked = Signal()
    resumeChosen = Signal(str)    # a checkpoint to resume from

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        buttons = QGridLayout(self)
        buttons.setContentsMargins(0, 0, 0, 0)
        self.train_button = QPushButton("Train")
        self.train_button.setToolTip("Start training with these settings (Ctrl+T)")
        self.train_button.clicked.connect(lambda _checked=False: self.trainClicked.emit())
        self.pause_button = QPushButton("Pause")
        self.pause_button.clicked.connect(lambda _checked=False: self.pauseClicked.emit())
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop after the current step; a checkpoint is saved")
        self.stop_button.clicked.connect(lambda _checked=False: self.stopClicked.emit())
        self.resume_button = QPushButton("Resume from checkpoint...")
        self.resume_button.clicked.connect(self._pick_resume)
        buttons.addWidget(self.train_button, 0, 0)
        buttons.addWidget(self.pause_button, 0, 1)
        buttons.addWidget(self.stop_button, 0, 2)
        buttons.addWidget(self.resume_button, 1, 0, 1, 3)

    def show_state(self, mode: str, *, can_train: bool) -> None:
        """Offer what `mode` ("idle", "train" or "follow") allows; Train also needs a valid form."""
        busy = mode != "idle"
        self.train_button.setEnabled(not busy and can_train)
        self.resume_button.setEnabled(not busy)
        self.pause_button.setEnabled(mode == "train")
        self.stop_button.setEnabled(mode == "train")
        if not busy:
            self.pause_button.setText("Pause")
        self.setVisible(mode != "follow")

    def show_paused(self, paused: bool) -> None:
        self.pause_button.setText("Resume" if paused else "Pause")

    def _pick_resume(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Resume from checkpoint", "", "Checkpoints (*.safetensors)")
        if path:
            self.resumeChosen.emit(path)
