"""Interpolation: walk between two latents (two dataset images, or one z and two classes), live and as a strip.

Endpoints: two images of a split (index boxes; the map's clicks arrive through `state.imageSelected`; sampler or map
latents through the state's hand-offs), or "class morph": one z and two classes, walking only the label embedding.
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
from PySide6.QtWidgets import QLabel, QSplitter, QVBoxLayout, QWidget
from superqt.utils import qthrottled

from core.errors import UserError
from core.images import image_grid, save_png
from core.latent.encoding import Latents, decode_latents, encode_images, encode_split
from core.latent.interpolation import active_dims, interpolate_images
from core.latent.map_data import latent_layers
from explorer.handoffs import INTERPOLATE, Endpoint
from explorer.panel import Panel
from explorer.panels.interpolate.endpoints import EndpointsView
from explorer.panels.interpolate.path_view import PathView
from explorer.panels.interpolate.traversal import TraversalView
from explorer.panels.shown import WorkWhenShown
from explorer.panels.tasks import PanelTasks
from explorer.state import AppState


class InterpolatePanel(WorkWhenShown, Panel, QWidget):
    """A composition of three views: the endpoints (left: endpoints.py), the walk (middle: path_view.py) and the
    traversal sliders (right: traversal.py). The panel encodes the split, takes hand-offs and decodes the path."""

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
        self.strip: np.ndarray | None = None
        self.current: np.ndarray | None = None    # the image the live view shows
        self.endpoints, self.walk, self.traversal = EndpointsView(), PathView(), TraversalView()
        self._build()
        # Slider drags decode at most every 16 ms, always ending on the latest value (superqt's throttle).
        self._live = qthrottled(self._decode_current, 16, parent=self)
        # Traversal drags redraw the whole path (thumbnails, strip, live view) at most every 33 ms, latest value wins.
        self._traverse = qthrottled(self._endpoints_changed, 33, parent=self)
        self.walk.t_slider.valueChanged.connect(lambda _: self._live())
        self.traversal.offsetsChanged.connect(lambda: self._traverse())
        state.vaeChanged.connect(self.reload)
        state.datasetChanged.connect(self.reload)
        state.imageSelected.connect(self._on_image_selected)
        state.interpolationRequested.connect(self._take_endpoints)
        self.reload()

    def _build(self) -> None:
        e, w, t = self.endpoints, self.walk, self.traversal
        # the views' widgets and operations that callers (and tests) reach through the panel
        self.mode, self.index, self.cls, self.thumbs, self.layer = e.mode, e.index, e.cls, e.thumbs, e.layer
        self.spherical, self.linear = e.spherical, e.linear
        self.z, self.y, self._external = e.z, e.y, e.external      # lists the view changes in place
        self.t_slider, self.t_label, self.view, self.steps = w.t_slider, w.t_label, w.view, w.steps
        self.strip_grid, self.png_btn, self.gif_btn = w.strip_grid, w.png_btn, w.gif_btn
        self.set_endpoint, self.receive_latent = e.set_endpoint, e.receive
        self.slider_dims, self.dim_slider, self.reset_offsets = t.slider_dims, t.dim_slider, t.reset
        e.changed.connect(self._endpoints_changed)
        e.indexChanged.connect(lambda k: self._load_endpoint(k, redraw=True))
        e.layerChanged.connect(self._layer_changed)
        w.steps.valueChanged.connect(lambda _: self._update_strip())
        w.exportChosen.connect(lambda kind, path: (self.export_gif if kind == "gif" else self.export_strip_png)(path))
        t.offsetsReset.connect(self._traverse_reset)
        self.status = QLabel("")
        self.status.setWordWrap(True)   # a long line wraps; it never widens the window
        split = QSplitter()
        for view in (e, w, t):
            split.addWidget(view)
        split.setSizes([230, 480, 280])
        lay = QVBoxLayout(self)
        lay.addWidget(split, 1)
        lay.addWidget(self.status)

    @property
    def offsets(self) -> np.ndarray:
        """The traversal's offset of the whole path per latent dimension."""
        return self.traversal.offsets

    # ---- loading ----------------------------------------------------------------------------------------------------
    def reload(self) -> None:
        if self.defer_while_hidden():
            return
        self.tasks.cancel_all()
        self.latents = None
        self._images = None
        self._clear_views()      # the old model's decodes are not this model's
        vae = self.state.vae
        self.endpoints.fill_classes(list(vae.meta.class_names) if vae is not None and vae.model.num_classes else [])
        found = self.state.split_to_encode(self._split)
        if isinstance(found, str):
            self.status.setText(found)
            self.walk.set_enabled(False)
            for box in self.index:
                box.setEnabled(False)
            return
        vae, split = found
        self._images = split.images.permute(0, 2, 3, 1).cpu().numpy().copy()
        self.endpoints.set_count(len(split))
        self.status.setText(f"encoding the {self._split} split…")
        self.tasks.start("encode", encode_split, vae.model, split, batch_size=256, on_result=self._on_encoded,
                         status=self.status.setText)

    def _clear_views(self) -> None:
        self._traverse.cancel()
        self._live.cancel()
        self.strip = self.current = None
        self.walk.clear()
        for thumb in self.thumbs:
            thumb.set_image(None, "")

    def _on_encoded(self, lat: Latents | None) -> None:
        if lat is None:
            return
        self.latents = lat
        # A latent received from another panel since the model changed is kept when it fits this model; one of
        # another size belonged to the old model and gives way to the index box.
        dim = lat.mu.shape[1]
        self._external[:] = [ext and len(self.z[k]) == dim for k, ext in enumerate(self._external)]
        model = self.state.vae_model
        self.endpoints.fill_layers(model.latent_layers if model is not None else ())
        self.traversal.build(lat.kl_per_dim, self.layer_slice(), _dim_names(model, dim))
        self.walk.set_enabled(True)
        for k in range(2):
            self.index[k].setEnabled(True)
            self._load_endpoint(k)
            self.endpoints.show_class(k)
        kl = lat.kl_per_dim
        self.status.setText(f"{active_dims(kl)} of {len(kl)} latent dimensions active (KL > 0.01 nats)")
        self._endpoints_changed()

    def shutdown(self) -> None:
        self._traverse.cancel()
        self._live.cancel()
        self.tasks.shutdown()

    # ---- endpoints --------------------------------------------------------------------------------------------------
    def _load_endpoint(self, k: int, *, redraw: bool = False) -> None:
        """Endpoint k is the image its index box names (unless a latent sent from elsewhere holds it)."""
        lat = self.latents
        if lat is not None and not self._external[k]:
            i = self.index[k].value()
            self.z[k] = lat.mu[i].copy()
            self.y[k] = int(lat.labels[i])
            self.endpoints.show_class(k)
        if redraw:
            self._endpoints_changed()

    def _on_image_selected(self, split: str, index: int) -> None:
        """A panel picked a dataset image: it becomes endpoint B, the old B becomes A (so two clicks set both)."""
        if split != self._split or self.latents is None or not 0 <= index < len(self.latents):
            return
        self.endpoints.pick_image(index)
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
        slots = [self.endpoints.next_slot()] if len(ends) == 1 else list(range(min(2, len(ends))))
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

    def set_endpoint_image(self, k: int, split: str, index: int) -> None:
        """Endpoint k is dataset image `index` of `split`, encoded by the model this panel shows (any split)."""
        found = self.state.split_to_encode(split)
        if isinstance(found, str):
            self.status.setText(found)
            return
        vae, part = found
        z = encode_images(vae.model, part.images[index:index + 1], part.labels[index:index + 1].cpu().numpy())[0]
        self.set_endpoint(k, z, int(part.labels[index]))

    # ---- the path ---------------------------------------------------------------------------------------------------
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
        dim = self.latents.mu.shape[1]    # that layer's sliders; the old offsets go
        self.traversal.build(self.latents.kl_per_dim, self.layer_slice(), _dim_names(self.state.vae_model, dim))
        self._endpoints_changed()

    def _path_ready(self) -> bool:
        """Both endpoints and the traversal offsets fit the loaded model (not so while a new model encodes)."""
        model = self.state.vae_model
        return (model is not None and len(self.z[0]) == len(self.z[1]) == len(self.offsets) == model.latent_dim)

    def _traverse_reset(self) -> None:
        self._traverse.cancel()
        self._endpoints_changed()

    def _endpoints_changed(self) -> None:
        if not self._path_ready():
            return
        self.index[1].setEnabled(not self.endpoints.morph() and self.latents is not None)
        ends = self._path_ends()
        conditional = self.state.vae_model.num_classes > 0
        for k in range(2):
            y = self.y[k]
            name = f": {self.state.vae.meta.class_names[y]}" if self.cls[k].count() else ""
            image = decode_latents(self.state.vae_model, ends[k][None], y if conditional else None)[0]
            self.thumbs[k].set_image(image, ("A" if k == 0 else "B") + name)
        self._update_strip()
        self._live()

    def _path_ends(self) -> tuple[np.ndarray, np.ndarray]:
        """The path's two latents with the traversal offsets applied; with a layer picked, B is A's code with B's
        slice of that layer."""
        z0 = self.z[0] + self.offsets
        z1 = (self.z[0] if self.endpoints.morph() else self.z[1]) + self.offsets
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
        if self._path_ready():
            t = self.walk.t()
            self.current = self.path_images(t)[0]
            self.walk.show_current(self.current, t)

    def _update_strip(self) -> None:
        if self._path_ready():
            self.strip = self.path_images(self.walk.step_times())
            self.walk.show_strip(self.strip)

    # ---- export -----------------------------------------------------------------------------------------------------
    def export_strip_png(self, path: str) -> None:
        self._traverse.flush()     # a traversal or t change still waiting in a rate limiter: exports show the
        self._live.flush()         # settings on screen
        if self.strip is None:
            raise UserError("nothing to export yet: load a VAE and a dataset first")
        save_png(image_grid(self.strip, len(self.strip)), path, scale=4)

    def export_gif(self, path: str, *, frames: int = 24, scale: int = 4, ms_per_frame: int = 80) -> None:
        """An animated GIF that walks A -> B -> A (a loop without a jump)."""
        self._traverse.flush()
        self._live.flush()
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


def _dim_names(model, n: int) -> list[str]:
    """z<d> for a one-layer code; <layer>[i] (i within the layer) for a hierarchical one."""
    layers = latent_layers(model) if model is not None else ()
    if len(layers) < 2 or layers[-1][1].stop != n:
        return [f"z{d}" for d in range(n)]
    return [f"{name}[{i}]" for name, cols in layers for i in range(cols.stop - cols.start)]


def torch_images(images: np.ndarray):
    """uint8 (M, H, W, C) images as the uint8 (M, C, H, W) tensor the encoders take."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
