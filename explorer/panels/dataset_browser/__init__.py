"""The Dataset tab (FiftyOne's browser, in small): the panel (panel.py) and its saved views (saved_views.py)."""

from explorer.panels.dataset_browser.panel import SOURCE, DatasetBrowserPanel

__all__ = ["SOURCE", "DatasetBrowserPanel"]
