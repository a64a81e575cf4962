"""Checkpoints that would crash a reader: metadata nested 100,000 deep, a FIFO or a device in place of the file, and a
10 GB checkpoint under an address-space limit (`ulimit -v`, common on shared clusters): each one line, exit 2."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from core import cli
from core.config import Config, DataConfig, TrainConfig, VAEConfig
from core.data.datasets import DatasetMeta
from core.models import build_model
from core.training.checkpoint import save_checkpoint

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def good(tmp_path) -> Path:
    meta = DatasetMeta("digits", tuple(str(i) for i in range(10)), 1, 16)
    cfg = Config(DataConfig("digits", image_size=16), VAEConfig(latent_dim=2, width=4, stages=1), TrainConfig())
    return save_checkpoint(tmp_path / "good.safetensors", model=build_model(cfg.model, meta), config=cfg, meta=meta,
                           train_state={"step": 3, "epoch": 1}, metrics={"elbo": -1.0})


def rewrite(good: Path, out: Path, change) -> Path:
    raw = good.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header, body = json.loads(raw[8:8 + n]), raw[8 + n:]
    size = change(header, len(body))
    data = json.dumps(header).encode()
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(data)) + data + body)
        if size:
            f.truncate(8 + len(data) + size)   # holes: nothing written to disk
    return out


def one_line_error(capsys, argv) -> str:
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize("key", ["config", "meta", "metrics", "train_state"])
def test_metadata_nested_100000_deep_is_one_line(good, tmp_path, capsys, key):
    def deep(header, _):
        header["__metadata__"][key] = "[" * 100_000 + "]" * 100_000

    bad = rewrite(good, tmp_path / "deep.safetensors", deep)
    assert "nested too deeply" in one_line_error(capsys, ["sample", str(bad), "--out", str(tmp_path / "s.png")])


def test_a_header_nested_100000_deep_is_one_line(tmp_path, capsys):
    data = b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    bad = tmp_path / "deep.safetensors"
    bad.write_bytes(struct.pack("<Q", len(data)) + data)
    assert "nested too deeply" in one_line_error(capsys, ["sample", str(bad), "--out", str(tmp_path / "s.png")])


def test_a_fifo_or_a_device_is_not_read(tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "fifo.safetensors")
    (tmp_path / "zero.safetensors").symlink_to("/dev/zero")
    for name in ("fifo.safetensors", "zero.safetensors"):
        err = one_line_error(capsys, ["sample", str(tmp_path / name), "--out", str(tmp_path / "s.png")])
        assert "not a regular file" in err


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux's address-space limit")
def test_a_10_gb_checkpoint_under_an_address_space_limit_is_one_line(good, tmp_path):
    def huge(header, end):
        header["model.huge"] = {"dtype": "F32", "shape": [2_500_000_000], "data_offsets": [end, end + 10**10]}
        return end + 10**10

    bad = rewrite(good, tmp_path / "huge.safetensors", huge)
    script = ("import resource, sys; from core import cli; import core.cli.sample, core.training.checkpoint; "
              "vsz = int(open('/proc/self/statm').read().split()[0]) * 4096; "
              "resource.setrlimit(resource.RLIMIT_AS, (vsz + (2 << 30), vsz + (2 << 30))); "
              "sys.exit(cli.main(sys.argv[1:]))")
    proc = subprocess.run([sys.executable, "-c", script, "sample", str(bad), "--out", str(tmp_path / "s.png")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, VAE_EXPLORER_HOME=str(tmp_path / "home")))
    assert proc.returncode == 2, proc.stderr
    assert "does not fit in this machine's memory (10.0 GB)" in proc.stderr and "Traceback" not in proc.stderr
