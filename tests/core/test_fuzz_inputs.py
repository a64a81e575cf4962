"""Property-based fuzzing of what users hand the program: checkpoint files (their header, metadata and bytes),
configuration JSON, and command-line arguments. The property is the product's promise: a clean `UserError` (for the
CLI: exit status 2 and one line) or a valid result, never any other exception.

The number of examples is bounded so the suite stays quick; `HYPOTHESIS_PROFILE=deep` runs many more.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core import cli
from core.cli.common import ArgumentError
from core.cli.main import build_parser
from core.cli.train import build_config
from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import DatasetMeta
from core.errors import UserError
from core.models import build_model
from core.training.checkpoint import load_model, save_checkpoint

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("deep", max_examples=2000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

META = DatasetMeta("digits", tuple(str(i) for i in range(10)), 1, 8)
CONFIG = Config(DataConfig("digits", image_size=8), VAEConfig(latent_dim=2, width=4, stages=1), TrainConfig(epochs=1))

# JSON values of every type, the awkward ones over-represented.
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                    st.sampled_from([0, -1, 1, 2**31, 2**63, 10**9]),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                    st.sampled_from(["", "x", "-3", "1e9", "vae", "diffusion", "nan"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                            st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                           max_leaves=6)


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory) -> tuple[dict, bytes]:
    """A tiny valid checkpoint split into its JSON header and its tensor bytes."""
    path = tmp_path_factory.mktemp("fuzz") / "good.safetensors"
    save_checkpoint(path, model=build_model(CONFIG.model, META), config=CONFIG, meta=META,
                    train_state={"step": 3, "epoch": 1, "best": -1.5}, metrics={"elbo": -1.0})
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def _write(path: Path, header: dict, body: bytes) -> Path:
    data = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(data)) + data + body)
    return path


def _paths(obj, prefix=()):
    """Every place in a JSON value (as a key path), the value itself included."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, (*prefix, i))


def _replace(obj, path, value):
    if not path:
        return value
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return obj


def _load_and_use(path: Path) -> None:
    """The property: a UserError, or a model that loads and samples."""
    try:
        loaded = load_model(path)
    except UserError as e:
        assert str(e) and "Traceback" not in str(e)
        return
    with torch.no_grad():
        images = loaded.model.sample(torch.zeros(2, dtype=torch.long))
    assert images.shape[0] == 2


@given(data=st.data(), value=json_values)
def test_damaged_checkpoint_metadata_is_a_user_error_or_a_working_model(good_checkpoint, tmp_path, data, value):
    header, body = good_checkpoint
    header = json.loads(json.dumps(header))
    meta = header["__metadata__"]
    key = data.draw(st.sampled_from(sorted(meta)), label="metadata entry")
    if key in ("config", "meta", "train_state", "metrics", "optim") and data.draw(st.booleans(), label="inside"):
        obj = json.loads(meta[key])
        where = data.draw(st.sampled_from(list(_paths(obj))), label="path")
        meta[key] = json.dumps(_replace(obj, where, value))
    else:
        meta[key] = json.dumps(value) if data.draw(st.booleans(), label="as json") else str(value)
    _load_and_use(_write(tmp_path / "m.safetensors", header, body))


@given(data=st.data(), value=json_values)
def test_damaged_tensor_entries_are_a_user_error_or_a_working_model(good_checkpoint, tmp_path, data, value):
    header, body = good_checkpoint
    header = json.loads(json.dumps(header))
    name = data.draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")), label="tensor")
    field = data.draw(st.sampled_from(["dtype", "shape", "data_offsets", None]), label="field")
    if field is None:
        header[name] = value
    else:
        header[name][field] = value
    _load_and_use(_write(tmp_path / "t.safetensors", header, body))


@given(cut=st.integers(min_value=0, max_value=10_000), flips=st.lists(st.integers(min_value=0), max_size=4))
def test_truncated_or_bit_flipped_checkpoints(good_checkpoint, tmp_path, cut, flips):
    header, body = good_checkpoint
    data = bytearray(struct.pack("<Q", len(json.dumps(header).encode())) + json.dumps(header).encode() + body)
    for f in flips:
        data[f % len(data)] ^= 0xFF
    path = tmp_path / "c.safetensors"
    path.write_bytes(bytes(data[:max(0, len(data) - cut)]))
    _load_and_use(path)


@given(doc=json_values)
def test_any_json_document_is_a_config_or_a_user_error(doc):
    try:
        cfg = Config.from_dict(doc)
    except UserError:
        return
    assert Config.from_dict(cfg.to_dict()) == cfg


@given(data=st.data(), value=json_values)
def test_a_config_file_with_one_bad_value(tmp_path, data, value):
    doc = CONFIG.to_dict()
    where = data.draw(st.sampled_from(list(_paths(doc))), label="path")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(_replace(doc, where, value)))
    try:
        Config.from_file(path)
    except UserError as e:
        assert str(path) in str(e)


@given(raw=st.binary(max_size=64) | st.just(b"[" * 100_000) | st.just(b"\xff\xfe{}"))
def test_config_files_that_are_not_json_text(tmp_path, raw):
    path = tmp_path / "config.json"
    path.write_bytes(raw)
    try:
        Config.from_file(path)
    except UserError as e:
        assert str(path) in str(e)


TRAIN_WORDS = ["--preset", "digits", "mnist", "nope", "--epochs", "--batch-size", "--lr", "--seed", "--per-class",
               "--classes", "--image-size", "--set", "model.latent_dim=4", "train.seed=99999999999999999999",
               "data.image_size=-3", "model.beta=nan", "train.lr=inf", "model=3", "x.y=1", "--model", "diffusion",
               "gan", "--threads", "--device", "cpu", "cuda:7", "--config", "--resume", "0", "-1", "1e9", "3.5",
               "9" * 30, "a,b", ",", ""]


@given(words=st.lists(st.sampled_from(TRAIN_WORDS), max_size=8))
def test_train_arguments_parse_to_a_config_or_a_user_error(words):
    parser = build_parser()
    try:
        args = parser.parse_args(["train", *words])
        cfg = build_config(args)
    except (UserError, ArgumentError):
        return
    except SystemExit as e:        # --help
        assert e.code == 0
        return
    assert isinstance(cfg, Config)


SAMPLE_WORDS = ["--n", "--classes", "--temperature", "--seed", "--scale", "--steps", "--guidance", "--sampler",
                "--device", "--out", "0", "1", "2", "-1", "100000", "1e9", "nan", "3,7", "Airplane", "", ",",
                "ddim", "cpu", "gpu", "x.png", "x.jpg", str(2**64)]


@given(words=st.lists(st.sampled_from(SAMPLE_WORDS), max_size=6))
def test_sample_arguments_exit_0_or_2_with_one_line(good_checkpoint, tmp_path, capsys, monkeypatch, words):
    header, body = good_checkpoint
    ckpt = _write(tmp_path / "ok.safetensors", header, body)
    monkeypatch.chdir(tmp_path)    # a relative --out lands here
    code = cli.main(["sample", str(ckpt), *words])
    _, err = capsys.readouterr()
    assert code in (0, 2)
    if code == 2:
        assert len(err.strip().splitlines()) == 1 and err.startswith("vae-explorer: error: ")
