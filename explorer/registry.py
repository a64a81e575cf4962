"""The panels of the main window, in tab order: the one place a panel is registered.

Each entry names the panel's tab, its module (under `explorer.panels`, or a full dotted name) and its class. The
modules are imported when the window builds the panel (most import torch: after start-up's worker has), so the tab's
title is here too; everything else a panel is (what it shows, how it is built) it declares itself (explorer/panel.py).
"""

from __future__ import annotations

from typing import NamedTuple


class PanelEntry(NamedTuple):
    title: str
    module: str        # "sampler" (explorer.panels.sampler) or a full dotted module name
    cls_name: str

    @property
    def import_name(self) -> str:
        return self.module if "." in self.module else f"explorer.panels.{self.module}"

    @property
    def key(self) -> str:
        """The name the window files the panel under (`window.panels[key]`)."""
        return self.module.rsplit(".", 1)[-1]


PANELS: list[PanelEntry] = [
    PanelEntry("Train", "train", "TrainPanel"),
    PanelEntry("Latent map", "latent_map", "LatentMapPanel"),
    PanelEntry("Sampler", "sampler", "SamplerPanel"),
    PanelEntry("Interpolate", "interpolate", "InterpolatePanel"),
    PanelEntry("Denoise/Enhance", "restore", "RestorePanel"),
    PanelEntry("Codes", "codes", "CodesPanel"),
    PanelEntry("Dataset", "dataset_browser", "DatasetBrowserPanel"),
    PanelEntry("Runs", "runs", "RunsPanel"),
    PanelEntry("Experiments", "experiments", "ExperimentsPanel"),
]


def register(title: str, module: str, cls_name: str) -> PanelEntry:
    """Add a panel (a tab after the others) to every main window built from now on."""
    entry = PanelEntry(title, module, cls_name)
    PANELS.append(entry)
    return entry
