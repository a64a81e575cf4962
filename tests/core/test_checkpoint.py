"""Checkpoints: round trip, optimizer state, and the clear errors for wrong, truncated or pickled files."""

import json
import struct

import pytest
import torch
from safetensors.torch import save_file

from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import DatasetMeta
from core.errors import UserError
from core.models import build_model
from core.training.checkpoint import FORMAT_VERSION, load_checkpoint, load_model, save_checkpoint

CONFIG = Config(DataConfig("digits", image_size=16), VAEConfig(latent_dim=4, width=8), TrainConfig(epochs=1))
META = DatasetMeta("digits", tuple(str(i) for i in range(10)), 1, 16)


def trained_model_and_optimizer():
    torch.manual_seed(0)
    model = build_model(CONFIG.model, META)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        loss = model.loss(torch.rand(4, 1, 16, 16), torch.tensor([1, 2, 3, 4]))["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model, opt


@pytest.fixture
def checkpoint(tmp_path):
    model, opt = trained_model_and_optimizer()
    ema = build_model(CONFIG.model, META)
    ema.load_state_dict({k: v * 0.5 for k, v in model.state_dict().items()})
    rng = torch.get_rng_state()
    path = save_checkpoint(tmp_path / "ck.safetensors", model=model, config=CONFIG, meta=META, ema=ema,
                           optimizers={"model": opt}, train_state={"step": 7, "epoch": 2, "rng": rng},
                           metrics={"elbo": -80.5})
    return path, model, ema, opt, rng


def test_round_trip_gives_identical_outputs(checkpoint):
    path, model, ema, _, _ = checkpoint
    loaded = load_model(path, use_ema=False)
    assert loaded.step == 7 and loaded.epoch == 2 and loaded.metrics == {"elbo": -80.5}
    assert loaded.config == CONFIG and loaded.meta == META and not loaded.model.training
    z, y = torch.randn(3, 4), torch.tensor([0, 5, 9])
    model.eval()
    assert torch.equal(loaded.model.decode(z, y), model.decode(z, y))
    with_ema = load_model(path)   # EMA weights by default
    assert torch.equal(with_ema.model.decode(z, y), ema.eval().decode(z, y))
    assert not list(path.parent.glob(".*tmp*")), "the temporary file of the atomic write is gone"


def test_optimizer_and_rng_state_round_trip(checkpoint):
    path, model, _, opt, rng = checkpoint
    ck = load_checkpoint(path)
    assert ck.train_state["rng"].dtype == torch.uint8 and torch.equal(ck.train_state["rng"], rng)
    fresh = torch.optim.Adam(build_model(CONFIG.model, META).parameters(), lr=1e-3)
    fresh.load_state_dict(ck.optimizer_state)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, st in a["state"].items():
        for key, value in st.items():
            assert torch.equal(value, b["state"][pid][key])


def test_missing_and_folder(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        load_model(tmp_path / "nope.safetensors")
    with pytest.raises(UserError, match="folder"):
        load_model(tmp_path)


def test_truncated_file_is_refused(checkpoint, tmp_path):
    path = checkpoint[0]
    data = path.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[: len(data) - 100])
    with pytest.raises(UserError, match="truncated"):
        load_model(cut)
    cut.write_bytes(data[:20])
    with pytest.raises(UserError, match="truncated|not a safetensors"):
        load_model(cut)


def test_pickle_file_is_refused_without_unpickling(tmp_path):
    model, _ = trained_model_and_optimizer()
    for name, kwargs in (("zip.pt", {}), ("legacy.pt", {"_use_new_zipfile_serialization": False})):
        path = tmp_path / name
        torch.save(model.state_dict(), path, **kwargs)
        with pytest.raises(UserError, match="pickle"):
            load_model(path)


def test_foreign_and_newer_files(tmp_path):
    text = tmp_path / "notes.safetensors"
    text.write_text("hello, this is not a checkpoint at all")
    with pytest.raises(UserError, match="not a safetensors"):
        load_model(text)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(3)}, str(foreign), metadata={"something": "else"})
    with pytest.raises(UserError, match="not a vae-explorer checkpoint"):
        load_model(foreign)
    newer = tmp_path / "newer.safetensors"
    save_file({"model.w": torch.zeros(3)}, str(newer),
              metadata={"format": "vae-explorer-checkpoint", "format_version": str(FORMAT_VERSION + 1)})
    with pytest.raises(UserError, match="newer"):
        load_model(newer)


def test_damaged_config_json(checkpoint, tmp_path):
    path = checkpoint[0]
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header["__metadata__"]["config"] = "{not json"
    raw = json.dumps(header).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + n:])
    with pytest.raises(UserError, match="config"):
        load_model(bad)


def test_header_length_that_looks_like_a_pickle_opcode_is_still_read(tmp_path):
    """A safetensors header length whose low byte is 0x80 (the pickle opcode) must not be mistaken for a pickle."""
    model, _ = trained_model_and_optimizer()
    for pad in range(0, 600, 4):
        path = save_checkpoint(tmp_path / "ck.safetensors", model=model, config=CONFIG, meta=META,
                               train_state={"note": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    else:
        raise AssertionError("no padding gave a header length ending in 0x80")
    assert load_model(path).step == 0
