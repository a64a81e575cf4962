"""Interpolation: walk between two latents (two dataset images, or one z and two classes), live and as a strip.

Endpoints: two images of a split (index boxes; the map's clicks arrive through `state.imageSelected`; sampler or map
latents through `receive_latent`), or "class morph": one z and two classes, walking only the label embedding.
The t slider decodes live through a rate limiter; the strip of N steps exports as PNG or animated GIF. Below, one
slider per latent dimension, ordered by KL (active dimensions first), offsets the whole path by -3..3: the live view,
the endpoints' thumbnails, the strip and both exports follow it (through their own rate limiter).

A hierarchical VAE (more than one entry in `latent_layers`) adds a layer picker: with one layer picked, the path moves
only that layer's slice of the code (B contributes only that layer; the rest is A's) and the traversal sliders are
that layer's dimensions.

A latent sent from another panel survives the reload that a model change triggers when it fits the new model (the
map and the sampler send latents of the model they show; a latent of another size is dropped for the index boxes').
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QSlider,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)
from superqt.utils import qthrottled, signals_blocked

from core.errors import UserError
from core.images import image_grid, save_png
from core.latent.encoding import Latents, decode_latents, encode_images, encode_split
from core.latent.interpolation import active_dims, interpolate_images, traversal_order
from core.latent.map_data import latent_layers
from explorer.handoffs import INTERPOLATE, Endpoint
from explorer.panel import Panel
from explorer.panels.shown import WorkWhenShown
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState
from explorer.widgets.image_grid import ImageGrid
from explorer.widgets.latent_widgets import PixelView

MODES = ("two images", "class morph (same z)")
TRAVERSE_RANGE = 3.0
SLIDER_STEPS = 1000


class InterpolatePanel(WorkWhenShown, Panel, QWidget):
    title = "Interpolate"
    uses = ("vae",)
    accepts = (INTERPOLATE,)

    def __init__(self, state: AppState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.latents: Latents | None = None
        self._images: np.ndarray | None = None
        self._split = "test"
        self.tasks = PanelTasks(self)         # "encode": a reload cancels the running one, the newest wins
        # endpoints: latent and class; "external" latents (from the sampler / map) override the index boxes
        self.z = [np.zeros(1, np.float32), np.zeros(1, np.float32)]
        self.y = [0, 0]
        self._external: list[bool] = [False, False]
        self._next_external = 0
        self.offsets: np.ndarray = np.zeros(0, np.float32)
        self.strip: np.ndarray | None = None
        self.current: np.ndarray | None = None    # the image the live view shows
        self._dim_sliders: list[tuple[int, QSlider, QLabel]] = []
        self._build()
        # Slider drags decode at most every 16 ms, always ending on the latest value (superqt's throttle).
        self._live = qthrottled(self._decode_current, 16, parent=self)
        # Traversal drags redraw the whole path (thumbnails, strip, live view) at most every 33 ms, latest value wins.
        self._traverse = qthrottled(self._endpoints_changed, 33, parent=self)
        state.vaeChanged.connect(self.reload)
        state.datasetChanged.connect(self.reload)
        state.imageSelected.connect(self._on_image_selected)
        state.interpolationRequested.connect(self._take_endpoints)
        self.reload()

    # ---- layout -----------------------------------------------------------------------------------------------------
    def _build(self) -> None:
        self.mode = QComboBox()
        self.mode.addItems(MODES)
        self.mode.currentIndexChanged.connect(lambda _: self._endpoints_changed())
        self.index = [QSpinBox(), QSpinBox()]
        for k, box in enumerate(self.index):
            box.setPrefix("A: image " if k == 0 else "B: image ")
            box.valueChanged.connect(lambda _v, k=k: self._index_changed(k))
        self.cls = [QComboBox(), QComboBox()]
        for k, box in enumerate(self.cls):
            box.currentIndexChanged.connect(lambda _v, k=k: self._class_changed(k))
        self.layer = QComboBox()
        self.layer.setToolTip("A hierarchical VAE's latent layer that the path and the traversal sliders move (the "
                              "others stay at A's code)")
        self.layer.currentIndexChanged.connect(lambda _: self._layer_changed())
        self.spherical = QRadioButton("spherical")
        self.linear = QRadioButton("linear")
        self.linear.setChecked(True)
        group = QButtonGroup(self)
        group.addButton(self.linear)
        group.addButton(self.spherical)
        self.linear.toggled.connect(lambda _: self._endpoints_changed())
        self.thumbs = [PixelView(minimum=64), PixelView(minimum=64)]
        for thumb in self.thumbs:
            thumb.setMaximumHeight(140)
        self.t_slider = QSlider(Qt.Orientation.Horizontal)
        self.t_slider.setRange(0, SLIDER_STEPS)
        self.t_slider.valueChanged.connect(lambda _: self._live())
        self.t_label = QLabel("t = 0.00")
        self.view = PixelView(minimum=160)
        self.steps = QSpinBox()
        self.steps.setRange(2, 64)
        self.steps.setValue(10)
        self.steps.setPrefix("steps ")
        self.steps.valueChanged.connect(lambda _: self._update_strip())
        self.strip_grid = ImageGrid()
        self.strip_grid.setMinimumHeight(60)
        self.strip_grid.clicked.connect(lambda i: self.t_slider.setValue(
            round(i / max(1, self.steps.value() - 1) * SLIDER_STEPS)))
        self.png_btn = QPushButton("Export strip PNG…")
        self.png_btn.clicked.connect(lambda: self._export_dialog("png"))
        self.gif_btn = QPushButton("Export GIF…")
        self.gif_btn.clicked.connect(lambda: self._export_dialog("gif"))
        self.reset_btn = QPushButton("Reset dimensions")
        self.reset_btn.clicked.connect(self.reset_offsets)
        self.status = QLabel("")
        self.status.setWordWrap(True)   # a long line wraps; it never widens the window

        form = QFormLayout()
        form.addRow("endpoints", self.mode)
        ends = QGridLayout()
        for k in range(2):
            ends.addWidget(self.index[k], 0, k)
            ends.addWidget(self.cls[k], 1, k)
            ends.addWidget(self.thumbs[k], 2, k)
        form.addRow(ends)
        path = QHBoxLayout()
        path.addWidget(self.linear)
        path.addWidget(self.spherical)
        form.addRow("path", path)
        form.addRow("layer", self.layer)
        self._form = form
        form.setRowVisible(self.layer, False)
        left_l = QVBoxLayout()
        left_l.addLayout(form)
        left_l.addStretch(1)
        left = QWidget()
        left.setLayout(left_l)

        middle = QVBoxLayout()
        row = QHBoxLayout()
        row.addWidget(self.t_label)
        row.addWidget(self.t_slider, 1)
        middle.addLayout(row)
        middle.addWidget(self.view, 3)
        srow = QHBoxLayout()
        for w in (self.steps, self.png_btn, self.gif_btn):
            srow.addWidget(w)
        srow.addStretch(1)
        middle.addLayout(srow)
        middle.addWidget(self.strip_grid, 1)
        mid = QWidget()
        mid.setLayout(middle)

        self.dims_box = QWidget()
        self.dims_layout = QGridLayout(self.dims_box)
        self.dims_layout.setAlignment(Qt.AlignmentFlag.AlignTop)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.dims_box)
        right_l = QVBoxLayout()
        right_l.addWidget(QLabel("traversal (dimensions by KL, active first)"))
        right_l.addWidget(scroll, 1)
        right_l.addWidget(self.reset_btn)
        right = QWidget()
        right.setLayout(right_l)

        split = QSplitter()
        for w in (left, mid, right):
            split.addWidget(w)
        split.setSizes([230, 480, 280])
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)

    # ---- loading ----------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        if self.defer_while_hidden():
            return
        self.tasks.cancel_all()
        self.latents = None
        self._images = None
        self._clear_views()      # the old model's decodes are not this model's
        self._fill_classes()
        found = self.state.split_to_encode(self._split)
        if isinstance(found, str):
            self.status.setText(found)
            self._set_enabled(False)
            return
        vae, split = found
        self._images = split.images.permute(0, 2, 3, 1).cpu().numpy().copy()
        for box in self.index:
            with signals_blocked(box):
                box.setRange(0, len(split) - 1)
        with signals_blocked(self.index[1]):
            self.index[1].setValue(min(1, len(split) - 1))
        self.status.setText(f"encoding the {self._split} split…")
        self.tasks.start("encode", encode_split, vae.model, split, batch_size=256, on_result=self._on_encoded,
                         status=self.status.setText)

    def _clear_views(self) -> None:
        self._traverse.cancel()
        self._live.cancel()
        self.strip = self.current = None
        self.strip_grid.clear()
        self.view.set_image(None, "")
        for thumb in self.thumbs:
            thumb.set_image(None, "")

    def _set_enabled(self, on: bool) -> None:
        for w in (self.t_slider, self.png_btn, self.gif_btn, self.steps, *self.index):
            w.setEnabled(on)

    def _fill_classes(self) -> None:
        vae = self.state.vae
        names = list(vae.meta.class_names) if vae is not None and vae.model.num_classes else []
        for k, box in enumerate(self.cls):
            with signals_blocked(box):
                box.clear()
                box.addItems(names)
                if names:
                    box.setCurrentIndex(min(k * (len(names) - 1), len(names) - 1))
                box.setEnabled(bool(names))

    def _on_encoded(self, lat: Latents | None) -> None:
        if lat is None:
            return
        self.latents = lat
        # A latent received from another panel since the model changed is kept when it fits this model; one of
        # another size belonged to the old model and gives way to the index box.
        dim = lat.mu.shape[1]
        self._external = [ext and len(self.z[k]) == dim for k, ext in enumerate(self._external)]
        self._fill_layers()
        self._build_dim_sliders(lat.kl_per_dim)
        self._set_enabled(True)
        for k in range(2):
            self._load_endpoint(k)
            self._show_class(k)
        kl = lat.kl_per_dim
        self.status.setText(f"{active_dims(kl)} of {len(kl)} latent dimensions active (KL > 0.01 nats)")
        self._endpoints_changed()

    def shutdown(self) -> None:
        self._traverse.cancel()
        self._live.cancel()
        self.tasks.shutdown()

    # ---- endpoints --------------------------------------------------------------------------------------------------
    def _load_endpoint(self, k: int) -> None:
        lat = self.latents
        if lat is None or self._external[k]:
            return
        i = self.index[k].value()
        self.z[k] = lat.mu[i].copy()
        self.y[k] = int(lat.labels[i])
        self._show_class(k)

    def _show_class(self, k: int) -> None:
        """The class box of endpoint k shows its class (without feeding back)."""
        if 0 <= self.y[k] < self.cls[k].count():
            with signals_blocked(self.cls[k]):
                self.cls[k].setCurrentIndex(self.y[k])

    def _index_changed(self, k: int) -> None:
        self._external[k] = False
        self._load_endpoint(k)
        self._endpoints_changed()

    def _class_changed(self, k: int) -> None:
        if self.cls[k].currentIndex() >= 0:
            self.y[k] = self.cls[k].currentIndex()
        self._endpoints_changed()

    def _on_image_selected(self, split: str, index: int) -> None:
        """A panel picked a dataset image: it becomes endpoint B, the old B becomes A (so two clicks set both)."""
        if split != self._split or self.latents is None or not 0 <= index < len(self.latents):
            return
        with signals_blocked(self.index[0]), signals_blocked(self.index[1]):
            self.index[0].setValue(self.index[1].value())
            self.index[1].setValue(index)
        self._external = [False, False]
        for k in range(2):
            self._load_endpoint(k)
        self._endpoints_changed()

    def _take_endpoints(self) -> None:
        """Endpoints sent here (state.interpolation_request): one fills the next end (A, then B ...), two set A and B.
        Each is used in this panel's model: its latent when that model made it, else its image (a dataset image, or
        the sender's decode of its latent) encoded by this panel's model. The status bar says what happened."""
        request = self.state.interpolation_request
        if request is None:
            return
        ends = request.endpoints
        if len(ends) == 1:
            slots = [self._next_external]
            self._next_external = 1 - self._next_external
        else:
            slots = list(range(min(2, len(ends))))
        encoded = False
        for k, end in zip(slots, ends, strict=False):
            problem, own = self._use_endpoint(k, end)
            if problem:
                self.status.setText(problem)
                self.state.statusMessage.emit(problem)
                return
            encoded = encoded or not own
        self.state.statusMessage.emit(f"interpolating with {request.description}"
                                      + (" (encoded by the model this panel shows)" if encoded else ""))

    def _use_endpoint(self, k: int, end: Endpoint) -> tuple[str, bool]:
        """(why endpoint k cannot be `end`, or ""; whether its own latent was used as it is)."""
        model = self.state.vae_model
        if model is None:
            return "load a VAE in Interpolation to use what was sent", False
        if end.model is model:
            self.set_endpoint(k, end.z, end.label)
            return "", True
        if end.is_image:
            if end.dataset is not None and end.dataset is not self.state.dataset:
                return ("the images were picked in another dataset than the one loaded now; select again in the "
                        "latent map"), False
            self.set_endpoint_image(k, end.split, end.index)
            return "", False
        if end.model is None:
            return "the latent sent here does not say which model made it", False
        # A latent of another model (a sample of a Sampler pinned elsewhere): what it shows there, encoded here.
        image = decode_latents(end.model, end.z[None], end.label if end.model.num_classes else None)
        meta = self.state.vae.meta
        if image.shape[1:] != (meta.image_size, meta.image_size, meta.channels):
            return (f"the latent sent here is of a model of {image.shape[2]}x{image.shape[1]}px images; this panel's "
                    f"model takes {meta.image_size}x{meta.image_size}px: pin the same kind of model"), False
        label = min(end.label, model.num_classes - 1) if model.num_classes else 0
        z = encode_images(model, torch_images(image), [label])[0]
        self.set_endpoint(k, z, label)
        return "", False

    def receive_latent(self, z: np.ndarray, label: int) -> None:
        """Take a latent from another panel (sampler sample, map position); fills A, then B, then A again…"""
        k = self._next_external
        self._next_external = 1 - k
        self.set_endpoint(k, z, label)

    def set_endpoint(self, k: int, z: np.ndarray, label: int) -> None:
        self.z[k] = np.asarray(z, dtype=np.float32).copy()
        self.y[k] = int(label)
        self._external[k] = True
        self._show_class(k)
        self._endpoints_changed()

    def set_endpoint_image(self, k: int, split: str, index: int) -> None:
        """Endpoint k is dataset image `index` of `split`, encoded by the model this panel shows (any split)."""
        found = self.state.split_to_encode(split)
        if isinstance(found, str):
            self.status.setText(found)
            return
        vae, part = found
        z = encode_images(vae.model, part.images[index:index + 1], part.labels[index:index + 1].cpu().numpy())[0]
        self.set_endpoint(k, z, int(part.labels[index]))

    # ---- layers (a hierarchical VAE) --------------------------------------------------------------------------------
    def _fill_layers(self) -> None:
        """The layer picker lists the model's latent layers; shown only when there is more than one."""
        model = self.state.vae_model
        layers = model.latent_layers if model is not None else ()
        with signals_blocked(self.layer):
            self.layer.clear()
            self.layer.addItem("all layers")
            for name, size in layers:
                self.layer.addItem(f"{name} ({size} dims)")
            self.layer.setCurrentIndex(0)
        self._form.setRowVisible(self.layer, len(layers) > 1)

    def layer_slice(self) -> slice | None:
        """The picked layer's slice of the flat code; None for all layers (or a one-layer model)."""
        model, k = self.state.vae_model, self.layer.currentIndex() - 1
        if model is None or k < 0:
            return None
        layers = latent_layers(model)
        return layers[k][1] if k < len(layers) else None

    def _layer_changed(self) -> None:
        if self.latents is None:
            return
        self._build_dim_sliders(self.latents.kl_per_dim)   # that layer's sliders; the old offsets go
        self._endpoints_changed()

    def _path_ready(self) -> bool:
        """Both endpoints and the traversal offsets fit the loaded model (not so while a new model encodes)."""
        model = self.state.vae_model
        return (model is not None and len(self.z[0]) == len(self.z[1]) == len(self.offsets) == model.latent_dim)

    def _endpoints_changed(self) -> None:
        if not self._path_ready():
            return
        morph = self.mode.currentIndex() == 1
        self.index[1].setEnabled(not morph and self.latents is not None)
        ends = self._path_ends()
        for k in range(2):
            y = self.y[k]
            self.thumbs[k].set_image(self._decode(ends[k][None], y)[0],
                                     ("A" if k == 0 else "B") + (f": {self._class_name(y)}"
                                                                 if self.cls[k].count() else ""))
        self._update_strip()
        self._live()

    # ---- decoding ---------------------------------------------------------------------------------------------------
    def _class_name(self, y: int) -> str:
        return self.state.vae.meta.class_names[y]

    def _decode(self, z: np.ndarray, y: int) -> np.ndarray:
        conditional = self.state.vae_model.num_classes > 0
        return decode_latents(self.state.vae_model, z, y if conditional else None)

    def t(self) -> float:
        return self.t_slider.value() / SLIDER_STEPS

    def _path_ends(self) -> tuple[np.ndarray, np.ndarray]:
        """The path's two latents with the traversal offsets applied; with a layer picked, B is A's code with B's
        slice of that layer."""
        morph = self.mode.currentIndex() == 1
        z0 = self.z[0] + self.offsets
        z1 = (self.z[0] if morph else self.z[1]) + self.offsets
        dims = self.layer_slice()
        if dims is not None:
            mixed = z0.copy()
            mixed[dims] = z1[dims]
            z1 = mixed
        return z0, z1

    def path_images(self, ts) -> np.ndarray:
        """Decoded images along the current path at times ts (with the traversal offsets applied)."""
        z0, z1 = self._path_ends()
        return interpolate_images(self.state.vae_model, z0, self.y[0], z1, self.y[1], ts,
                                  spherical=self.spherical.isChecked(), dims=self.layer_slice())

    def _decode_current(self) -> None:
        if not self._path_ready():
            return
        t = self.t()
        self.t_label.setText(f"t = {t:.2f}")
        self.current = self.path_images(t)[0]
        self.view.set_image(self.current, f"t = {t:.2f}")

    def _update_strip(self) -> None:
        if not self._path_ready():
            return
        n = self.steps.value()
        self.strip = self.path_images(np.linspace(0.0, 1.0, n))
        self.strip_grid.set_images(self.strip, columns=n, captions=[f"{t:.2f}" for t in np.linspace(0, 1, n)])

    # ---- traversal --------------------------------------------------------------------------------------------------
    def _build_dim_sliders(self, kl_per_dim: np.ndarray) -> None:
        while self.dims_layout.count():
            item = self.dims_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self._dim_sliders = []
        self.offsets = np.zeros(len(kl_per_dim), np.float32)
        dims = self.layer_slice() or slice(0, len(kl_per_dim))
        names = self._dim_names(len(kl_per_dim))
        for row, d in enumerate(dims.start + traversal_order(kl_per_dim[dims])):
            active = kl_per_dim[d] > 0.01
            label = QLabel(f"{names[d]}  KL {kl_per_dim[d]:.2f}")
            label.setEnabled(bool(active))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(-300, 300)                  # hundredths of -3..3
            value = QLabel("+0.00")
            slider.valueChanged.connect(lambda v, d=int(d), lab=value: self._on_dim(d, v, lab))
            self.dims_layout.addWidget(label, row, 0)
            self.dims_layout.addWidget(slider, row, 1)
            self.dims_layout.addWidget(value, row, 2)
            self._dim_sliders.append((int(d), slider, value))

    def _dim_names(self, n: int) -> list[str]:
        """z<d> for a one-layer code; <layer>[i] (i within the layer) for a hierarchical one."""
        layers = latent_layers(self.state.vae_model) if self.state.vae_model is not None else ()
        if len(layers) < 2 or layers[-1][1].stop != n:
            return [f"z{d}" for d in range(n)]
        return [f"{name}[{i}]" for name, cols in layers for i in range(cols.stop - cols.start)]

    def dim_slider(self, dim: int) -> QSlider:
        return next(s for d, s, _ in self._dim_sliders if d == dim)

    def slider_dims(self) -> list[int]:
        """The latent dimensions in the order their sliders are shown."""
        return [d for d, _, _ in self._dim_sliders]

    def _on_dim(self, d: int, v: int, label: QLabel) -> None:
        self.offsets[d] = v / 100 * (TRAVERSE_RANGE / 3.0)
        label.setText(f"{self.offsets[d]:+.2f}")
        self._traverse()     # the strip, the thumbnails and the live view all follow the offsets

    def reset_offsets(self) -> None:
        for _, slider, _lab in self._dim_sliders:
            with signals_blocked(slider):
                slider.setValue(0)
            _lab.setText("+0.00")
        self.offsets[:] = 0
        self._traverse.cancel()
        self._endpoints_changed()

    # ---- export -----------------------------------------------------------------------------------------------------
    def _flush_pending(self) -> None:
        """Apply a traversal or t change still waiting in a rate limiter: exports show the settings on screen."""
        self._traverse.flush()
        self._live.flush()

    def export_strip_png(self, path: str) -> None:
        self._flush_pending()
        if self.strip is None:
            raise UserError("nothing to export yet: load a VAE and a dataset first")
        save_png(image_grid(self.strip, len(self.strip)), path, scale=4)

    def export_gif(self, path: str, *, frames: int = 24, scale: int = 4, ms_per_frame: int = 80) -> None:
        """An animated GIF that walks A -> B -> A (a loop without a jump)."""
        self._flush_pending()
        if not self._path_ready():
            raise UserError("nothing to export yet: load a VAE and a dataset first")
        ts = np.concatenate([np.linspace(0, 1, frames), np.linspace(1, 0, frames)[1:-1]])
        imgs = self.path_images(ts)
        h, w, c = imgs.shape[1:]
        pics = [Image.fromarray(a[..., 0] if c == 1 else a).resize((w * scale, h * scale), Image.NEAREST)
                for a in imgs]
        pics[0].save(path, save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)

    def export_png(self, path: str) -> None:
        self.export_strip_png(path)

    def _export_dialog(self, kind: str) -> None:
        name, filt = ("interpolation.gif", "GIF (*.gif)") if kind == "gif" else ("interpolation.png", "PNG (*.png)")
        path, _ = QFileDialog.getSaveFileName(self, "Export interpolation", name, filt)
        if path:
            (self.export_gif if kind == "gif" else self.export_strip_png)(path)


def torch_images(images: np.ndarray):
    """uint8 (M, H, W, C) images as the uint8 (M, C, H, W) tensor the encoders take."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
