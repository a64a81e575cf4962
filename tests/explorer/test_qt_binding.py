"""The Qt binding must not leak or drop references: PySide6 6.12.0 on Python 3.11 drops one reference to None on
every void call, and a live dashboard then aborts the interpreter within minutes ("none_dealloc"). constraints.txt
pins a good version and pyproject excludes the bad one; this test catches a regression of either."""

import sys

from PySide6.QtGui import QImage, QPainter, QPen


def test_void_qt_calls_do_not_drop_references_to_none(qapp):
    image = QImage(8, 8, QImage.Format.Format_RGB32)
    painter = QPainter(image)
    before = sys.getrefcount(None)
    for _ in range(2000):
        painter.setPen(QPen())
    painter.end()
    # Creating objects may add references to None; a binding bug removes ~2000.
    assert sys.getrefcount(None) >= before - 50
