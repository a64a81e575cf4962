"""One self-describing checkpoint file: safetensors tensors plus JSON metadata, never pickle.

Tensors: `model.*` (weights), `ema.*` (EMA weights, optional), `optim.*` (the model's optimizer state, flattened),
`optim_<key>.*` (the state of each other optimizer the model configured: `optim_d.*` for a VAE-GAN's discriminator),
`rng.*` (random generator states as uint8 tensors).
Metadata (str -> str, JSON values): the format name and version, the model kind, the run's Config, the DatasetMeta,
the optimizers' structure, the train state (step, epoch, best, ...) and the latest validation metrics.
`load_model(path)` rebuilds the model from this file alone.

Writes are atomic: a temporary file in the same folder, fsync, then rename, so a crash never leaves half a checkpoint
under the real name. Reading checks the file before safetensors touches it, so a wrong, truncated or foreign file
(a torch.save pickle in particular, which we never unpickle) gives a UserError that says what to do.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from core.config import Config
from core.data.datasets import DatasetMeta
from core.device import resolve_device
from core.errors import UserError
from core.files import atomic_write
from core.models import build_model
from core.models.optimizers import MODEL
from core.models.protocol import GenerativeModel

FORMAT = "vae-explorer-checkpoint"
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A model ready to use (eval mode) with everything needed to describe it."""

    model: GenerativeModel
    config: Config
    meta: DatasetMeta
    path: Path | None
    step: int
    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------- saving
def save_checkpoint(path: str | Path, *, model: GenerativeModel, config: Config, meta: DatasetMeta,
                    ema: nn.Module | None = None,
                    optimizers: Mapping[str, torch.optim.Optimizer] | None = None, train_state: dict | None = None,
                    metrics: dict[str, float] | None = None) -> Path:
    """Write `path` atomically. `optimizers` by name (`Optimizers.named()`: "model" and any extra objective's).
    `train_state` is JSON data, except values that are tensors (RNG states), which are stored as tensors
    `rng.<key>`; `load_checkpoint` gives them back in the same place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for prefix, module in (("model", model), ("ema", ema)):
        if module is not None:
            for k, v in module.state_dict().items():
                tensors[f"{prefix}.{k}"] = v.detach()
    optim_structures = {_optim_key(name): _flatten_optimizer(opt.state_dict(), tensors, prefix=_optim_key(name))
                        for name, opt in (optimizers or {}).items()}
    state_json: dict[str, Any] = {}
    for k, v in (train_state or {}).items():
        if isinstance(v, torch.Tensor):
            tensors[f"rng.{k}"] = v
        else:
            state_json[k] = v
    # safetensors wants contiguous CPU tensors that share no memory.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    metadata = {
        "format": FORMAT, "format_version": str(FORMAT_VERSION), "kind": config.model.kind,
        "config": json.dumps(config.to_dict()), "meta": json.dumps(meta.to_dict()),
        "train_state": json.dumps(state_json), "metrics": json.dumps(metrics or {}),
    }
    metadata.update({key: json.dumps(structure) for key, structure in optim_structures.items()})
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


# The metadata key (and tensor prefix) of an optimizer's state by its name: the model's is "optim", another's
# "optim_<name>"; a VAE-GAN's discriminator's is "optim_d", the name checkpoints had before optimizers were named.
_LEGACY_KEYS = {MODEL: "optim", "discriminator": "optim_d"}


def _optim_key(name: str) -> str:
    return _LEGACY_KEYS.get(name, f"optim_{name}")


def _optim_name(key: str) -> str | None:
    """The optimizer name a metadata key holds the state of; None for a key that is no optimizer's."""
    for name, legacy in _LEGACY_KEYS.items():
        if key == legacy:
            return name
    return key.removeprefix("optim_") if key.startswith("optim_") else None


def _flatten_optimizer(sd: dict, tensors: dict[str, torch.Tensor], *, prefix: str) -> dict:
    """Optimizer state_dict -> JSON structure; its tensors go into `tensors` as <prefix>.<param>.<key>."""
    state: dict[str, dict[str, Any]] = {}
    for pid, pstate in sd["state"].items():
        entry: dict[str, Any] = {}
        for k, v in pstate.items():
            if isinstance(v, torch.Tensor):
                tensors[f"{prefix}.{pid}.{k}"] = v
                entry[k] = {"tensor": f"{prefix}.{pid}.{k}"}
            else:
                entry[k] = {"value": v}
        state[str(pid)] = entry
    return {"state": state, "param_groups": sd["param_groups"]}


def _unflatten_optimizer(structure: dict, f) -> dict:
    state = {}
    for pid, entry in structure["state"].items():
        state[int(pid)] = {k: (f.get_tensor(v["tensor"]) if "tensor" in v else v["value"]) for k, v in entry.items()}
    groups = []
    for g in structure["param_groups"]:
        g = dict(g)
        if isinstance(g.get("betas"), list):
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    return {"state": state, "param_groups": groups}


# ---------------------------------------------------------------------------------------------------------- loading
@dataclass
class Checkpoint:
    """Everything in a checkpoint file, as loaded by `load_checkpoint` (tensors on the CPU)."""

    path: Path
    config: Config
    meta: DatasetMeta
    model_state: dict[str, torch.Tensor]
    ema_state: dict[str, torch.Tensor] | None
    optimizer_states: dict[str, dict]     # by optimizer name ("model", "discriminator", ...); {} without
    train_state: dict[str, Any]
    metrics: dict[str, float]

    @property
    def optimizer_state(self) -> dict | None:
        """The model's own optimizer's state (None when the checkpoint holds none)."""
        return self.optimizer_states.get(MODEL)


def _check_is_a_file(path: Path) -> None:
    if not path.exists():
        raise UserError(f"no checkpoint at {path}; check the path (checkpoints are *.safetensors files in a run "
                        "folder's checkpoints/)")
    if path.is_dir():
        example = path / "checkpoints" / "best.safetensors"
        raise UserError(f"{path} is a folder; give the checkpoint file, e.g. {example}")
    if not path.is_file():   # a FIFO would block the read forever, a device (/dev/zero) never end
        raise UserError(f"{path} is not a regular file (a FIFO, a device or a socket); give a checkpoint file")


def _check_file(path: Path) -> dict[str, str]:
    """Validate the safetensors framing by hand and return its metadata; UserError with advice otherwise."""
    _check_is_a_file(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(9)
        (n,) = struct.unpack("<Q", head[:8]) if len(head) >= 8 else (0,)
        # A safetensors file is an 8-byte header length, then a JSON header. torch.save writes a zip archive
        # ("PK\x03\x04") or, in the legacy format, a pickle (protocol opcode 0x80 and a version byte).
        looks_safetensors = head[8:9] == b"{"
        is_pickle = head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04",
                                                                                       b"\x05"))
        if not looks_safetensors and is_pickle:
            raise UserError(f"{path} is a PyTorch/pickle file (torch.save), which we never load because unpickling "
                            "can run arbitrary code; use a .safetensors checkpoint written by vae-explorer")
        if len(head) < 9:
            raise UserError(f"{path} is not a checkpoint (only {size} bytes); it is empty or truncated")
        f.seek(8)
        if n > size - 8 or n > 100_000_000:
            raise UserError(f"{path} is not a safetensors checkpoint or is truncated (its header claims {n} bytes, "
                            f"the file has {size}); use a file written by vae-explorer, or copy it again")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise UserError(f"{path} is not a safetensors checkpoint (its header is not JSON); use a .safetensors "
                            "file written by vae-explorer") from None
        except RecursionError:
            raise UserError(f"{path} is not a vae-explorer checkpoint (its header is nested too deeply to be one); "
                            "use a .safetensors file written by vae-explorer") from None
    if not isinstance(header, dict):
        raise UserError(f"{path} is not a safetensors checkpoint (unexpected header)")
    end = max((_tensor_end(k, v, path) for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise UserError(f"{path} is truncated ({size} bytes, {8 + n + end} expected): the save or the copy was "
                        "interrupted; use another checkpoint (e.g. checkpoints/best.safetensors) or copy it again")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise UserError(f"{path}: the safetensors metadata must map names to strings; the checkpoint is damaged")
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is a safetensors file but not a vae-explorer checkpoint (no '{FORMAT}' metadata); "
                        "train a model with vae-explorer or pick a checkpoint from a run folder")
    try:
        version = int(meta.get("format_version", ""))
    except ValueError:
        raise UserError(f"{path} has an unreadable format version {meta.get('format_version')!r}") from None
    if version > FORMAT_VERSION:
        raise UserError(f"{path} was written by a newer vae-explorer (format {version}, this one reads up to "
                        f"{FORMAT_VERSION}); update vae-explorer")
    if version < 1:
        raise UserError(f"{path} has an unknown checkpoint format version {version}")
    return meta


def _tensor_end(name: str, entry: Any, path: Path) -> int:
    """Where a tensor's bytes end, after checking its header entry (dtype, shape, offsets) is well formed."""
    ok = (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and isinstance(entry.get("shape"), list)
          and all(type(d) is int and 0 <= d < 2**40 for d in entry["shape"])
          and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
          and all(type(o) is int for o in entry["data_offsets"])
          and 0 <= entry["data_offsets"][0] <= entry["data_offsets"][1])
    if not ok:
        raise UserError(f"{path}: the header entry of tensor {name!r} is malformed (dtype, shape or offsets); the "
                        "checkpoint is damaged, use another one")
    return entry["data_offsets"][1]


def _json(meta: dict[str, str], key: str, path: Path, default: Any = None) -> Any:
    if key not in meta:
        if default is not None:
            return default
        raise UserError(f"{path} lacks the '{key}' entry; the checkpoint is damaged, use another one")
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError:
        raise UserError(f"{path}: the '{key}' entry is not valid JSON; the checkpoint is damaged, use another one") \
            from None
    except RecursionError:   # metadata nested thousands deep: no checkpoint of ours, and a bomb for every reader
        raise UserError(f"{path}: the '{key}' entry is nested too deeply; the checkpoint is damaged, use another "
                        "one") from None


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Read and check a checkpoint file (tensors on the CPU); UserError on a bad, truncated or foreign file, and on
    one that does not fit in memory (e.g. a 10 GB file under a shared cluster's `ulimit -v`)."""
    path = Path(path)
    try:
        return _load_checkpoint(path)
    except MemoryError:
        raise UserError(f"{path} does not fit in this machine's memory ({_size_of(path)}); close other programs, "
                        "raise the memory limit (ulimit -v) or use a smaller checkpoint") from None


def _size_of(path: Path) -> str:
    try:
        return f"{path.stat().st_size / 1e9:.1f} GB"
    except OSError:
        return "size unknown"


def _load_checkpoint(path: Path) -> Checkpoint:
    meta_s = _check_file(path)
    try:
        config = Config.from_dict(_json(meta_s, "config", path))
        meta = DatasetMeta.from_dict(_json(meta_s, "meta", path))
        metrics = _checked_metrics(_json(meta_s, "metrics", path, {}))
        if meta.image_size != config.data.image_size:
            raise UserError(f"its dataset metadata says {meta.image_size}px images but its config "
                            f"{config.data.image_size}px")
    except UserError as e:
        if str(path) in str(e):
            raise
        raise UserError(f"{path}: {e}; the checkpoint's metadata is damaged, use another checkpoint") from None
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            keys = list(f.keys())
            model_state = {k[6:]: f.get_tensor(k) for k in keys if k.startswith("model.")}
            ema_state = {k[4:]: f.get_tensor(k) for k in keys if k.startswith("ema.")} or None
            optim = {name: _unflatten_optimizer(_json(meta_s, key, path), f)
                     for key in meta_s if (name := _optim_name(key)) is not None}
            train_state = _json(meta_s, "train_state", path, {})
            for k in keys:
                if k.startswith("rng."):
                    train_state[k[4:]] = f.get_tensor(k)
    except UserError:
        raise
    except (SafetensorError, OSError, ValueError, KeyError, TypeError, RuntimeError) as e:  # a damaged body
        raise UserError(f"{path} could not be read ({e}); the checkpoint is damaged, use another one") from None
    _check_train_state(train_state, path)
    return Checkpoint(path, config, meta, model_state, ema_state, optim, train_state, metrics)


# train_state entries that are counters (whole numbers >= 0), and the one that may be None or a number.
_COUNTERS = ("step", "epoch", "pos", "bad_epochs", "skipped_steps")


def _check_train_state(state: Any, path: Path) -> None:
    if not isinstance(state, dict):
        raise UserError(f"{path}: train_state must be a JSON object; the checkpoint is damaged, use another one")
    for key in _COUNTERS:
        if key in state and not (type(state[key]) is int and 0 <= state[key] < 2**53):
            raise UserError(f"{path}: train_state.{key} must be a whole number >= 0, not {state[key]!r}; the "
                            "checkpoint is damaged, use another one")
    best = state.get("best")
    if best is not None and (isinstance(best, bool) or not isinstance(best, (int, float))):
        raise UserError(f"{path}: train_state.best must be a number or null, not {best!r}; the checkpoint is "
                        "damaged, use another one")


def _checked_metrics(metrics: Any) -> dict[str, float]:
    """The metrics a checkpoint carries: names to numbers (NaN and inf allowed: a diverged run reports them)."""
    if not isinstance(metrics, dict):
        raise UserError("metrics must be a JSON object of numbers")
    for k, v in metrics.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise UserError(f"metrics.{k} must be a number, not {v!r}")
    return {k: float(v) for k, v in metrics.items()}


def load_model(path: str | Path, device: str | torch.device = "cpu", *, use_ema: bool = True) -> LoadedModel:
    """Rebuild the model stored in `path` (EMA weights when present and use_ema) in eval mode on `device`."""

    ck = load_checkpoint(path)
    state = ck.ema_state if (use_ema and ck.ema_state) else ck.model_state
    try:
        model = build_model(ck.config.model, ck.meta)
    except (MemoryError, RuntimeError) as e:   # RuntimeError: torch's "not enough memory" on the CPU
        raise UserError(f"{path}: its model ({ck.config.model.kind}, {ck.meta.image_size}px) does not fit in this "
                        f"machine's memory ({type(e).__name__}); close other programs or use a smaller model") from None
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise UserError(f"{path}: the weights do not fit the model its config describes ({str(e).splitlines()[0]}); "
                        "the checkpoint is damaged or from an incompatible version") from None
    model.to(resolve_device(device)).eval()
    return LoadedModel(model, ck.config, ck.meta, ck.path, int(ck.train_state.get("step", 0)),
                       int(ck.train_state.get("epoch", 0)), dict(ck.metrics))


def from_snapshot(event, device: str | torch.device = "cpu") -> LoadedModel:
    """A LoadedModel from a Trainer's ModelSnapshot event (numpy weights), for panels that decode off-thread."""

    config = Config.from_dict(dict(event.config))
    meta = DatasetMeta.from_dict(dict(event.meta))
    model = build_model(config.model, meta)
    model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in event.state.items()})
    model.to(resolve_device(device)).eval()
    return LoadedModel(model, config, meta, None, int(event.step), int(event.epoch), {})
