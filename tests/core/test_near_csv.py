"""`sample --near FILE.csv`: the selection CSV is checked row by row (one line naming the row), a spreadsheet's
byte-order mark is accepted, and a FIFO is refused without waiting on it."""

from __future__ import annotations

import os
import threading

import pytest

from core import cli

TINY = ["--epochs", "1", "--per-class", "10", "--batch-size", "32", "--set", "model.width=8", "--set",
        "model.latent_dim=4", "--set", "model.stages=2", "--quiet"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    run = tmp_path_factory.mktemp("near") / "run"
    assert cli.main(["train", *TINY, "--out", str(run)]) == 0
    return run / "checkpoints" / "last.safetensors"


@pytest.mark.parametrize(("text", "says"), [
    ("split,index,label\ntrain,0,1\ntrain,3\n", "line 3: too few cells"),
    ("split,index,label\ntrain,0,1,7\n", "line 2: too many cells"),
    ("split,index\ntrain,99999999999999999999999\n", "line 2: index 99999999999999999999999 is out of range"),
    ("split,index,label\ntrain,1,-7\n", "line 2: label -7 is out of range"),
    ("split,index,label\ntrain,0,1\ntrain,1,10\n", "line 3: label 10 is not a class of this model (0 to 9)"),
    ("split,index,label\nvalid,0,1\n", "line 2: split 'valid'"),
    ("split;index\ntrain;0\n", "needs the columns 'split' and 'index'"),
    ("\ufeffsplit,index\ntrain,x\n", "line 2: index 'x'"),
])
def test_a_bad_row_is_one_line_naming_it(checkpoint, tmp_path, capsys, text, says):
    near = tmp_path / "sel.csv"
    near.write_text(text, encoding="utf-8")
    code = cli.main(["sample", str(checkpoint), "--near", str(near), "--out", str(tmp_path / "s.png")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and says in err, err
    assert not (tmp_path / "s.png").exists()


def test_a_spreadsheets_byte_order_mark_is_accepted(checkpoint, tmp_path, capsys):
    near = tmp_path / "sel.csv"
    near.write_text("\ufeffsplit,index,label\r\ntrain,0,1\r\ntrain,1,1\r\ntrain,2,1\r\n", encoding="utf-8")
    code = cli.main(["sample", str(checkpoint), "--near", str(near), "--n", "2", "--out", str(tmp_path / "s.png")])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "s.png").is_file()


def test_a_fifo_is_refused_without_waiting(checkpoint, tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "sel.csv")
    result = {}
    argv = ["sample", str(checkpoint), "--near", str(tmp_path / "sel.csv"), "--out", str(tmp_path / "s.png")]
    worker = threading.Thread(target=lambda: result.update(code=cli.main(argv)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "reading a FIFO hung"
    assert result["code"] == 2 and "not a regular file" in capsys.readouterr().err
