"""The PySide6 + pyqtgraph application. Imports core; core never imports this package."""
