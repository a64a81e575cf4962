"""The dataset browser's query language, sorting and exports (core.latent.query) on 70,000 synthetic rows and on
the digits."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from core.errors import UserError
from core.latent.query import Columns, export_folder_dataset, filter_rows, sort_rows, write_indices_csv

NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def big() -> Columns:
    rng = np.random.default_rng(0)
    n = 70_000
    return Columns(rng.integers(0, 10, n), rng.gamma(2.0, 0.008, n).astype(np.float32),
                   rng.gamma(3.0, 1.2, n).astype(np.float32))


def test_queries_on_70000_rows_return_exactly_the_matching_indices(big):
    lab, err, kl = big.labels, big.error, big.kl
    idx = np.arange(len(big))
    cases = {
        "class 8 and error > 0.015": (lab == 8) & (err > 0.015),
        "kl < 3": kl < 3,
        "not class 1 or index <= 100": (lab != 1) | (idx <= 100),
        "error >= 0.02 and (class 3 or class 5)": (err >= 0.02) & ((lab == 3) | (lab == 5)),
        "class 3 or class 5 and kl > 4": (lab == 3) | ((lab == 5) & (kl > 4)),      # 'and' binds tighter
        "CLASS != 2 AND kl<=2.5": (lab != 2) & (kl <= 2.5),
        "": np.ones(len(big), bool),
    }
    for query, mask in cases.items():
        got = filter_rows(query, big, NAMES)
        np.testing.assert_array_equal(got, np.flatnonzero(mask), err_msg=query)
        assert 0 < len(got) or query == ""


@pytest.mark.parametrize("query, says", [
    ("class 8 and", "expected at the end"), ("colour > 3", "unknown field 'colour'"), ("error 3", "comparison"),
    ("kl < lots", "'lots' is not a number"), ("class 12", "unknown class '12'"), ("class < 3", "== or != only"),
    ("(kl < 3", "')' expected"), ("kl < 3 error > 1", "unexpected 'error'"), ("kl < 3 $", "unexpected"),
])
def test_a_bad_query_is_one_line_that_names_the_problem(big, query, says):
    with pytest.raises(UserError, match=r"^query: ") as info:
        filter_rows(query, big, NAMES)
    assert says in str(info.value) and "\n" not in str(info.value)


def test_sort_is_stable_and_descending_puts_the_worst_first(big):
    rows = filter_rows("class 4", big, NAMES)
    worst = sort_rows(rows, big, "error", descending=True)
    assert set(worst) == set(rows) and np.all(np.diff(big.error[worst]) <= 0)
    by_class = sort_rows(np.arange(100), big, "class")
    for c in np.unique(big.labels[:100]):      # ties keep index order
        same = by_class[big.labels[by_class] == c]
        assert np.all(np.diff(same) > 0)


def test_exports_write_the_view_as_a_csv_and_a_folder_dataset(tmp_path):
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (30, 1, 8, 8), dtype=np.uint8)
    cols = Columns(np.arange(30) % 3, rng.random(30).astype(np.float32), rng.random(30).astype(np.float32))
    names = ["cat", "dog", "owl"]
    rows = sort_rows(filter_rows("class cat or class owl", cols, names), cols, "error", descending=True)
    write_indices_csv(tmp_path / "view.csv", "test", rows, cols, names)
    with open(tmp_path / "view.csv") as f:
        lines = list(csv.DictReader(f))
    assert [int(r["index"]) for r in lines] == rows.tolist() and {r["class"] for r in lines} == {"cat", "owl"}
    n = export_folder_dataset(tmp_path / "ds", lambda idx: images[idx], rows, cols.labels, names)
    assert n == len(rows) == 20
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["cat", "owl"]
    png = tmp_path / "ds" / "owl" / "test-2.png"
    np.testing.assert_array_equal(np.asarray(Image.open(png)), images[2, 0])
    with pytest.raises(UserError, match="is not empty"):
        export_folder_dataset(tmp_path / "ds", lambda idx: images[idx], rows, cols.labels, names)


def test_a_folder_export_reports_progress_and_stops_between_batches(tmp_path):
    images = np.zeros((40, 1, 8, 8), np.uint8)
    labels = np.arange(40) % 2
    seen = []
    n = export_folder_dataset(tmp_path / "all", lambda idx: images[idx], np.arange(40), labels, ["a", "b"], batch=16,
                              progress=lambda done, total: seen.append((done, total)))
    assert n == 40 and seen == [(16, 40), (32, 40), (40, 40)]
    n = export_folder_dataset(tmp_path / "part", lambda idx: images[idx], np.arange(40), labels, ["a", "b"],
                              batch=16, should_stop=lambda: len(list((tmp_path / "part").rglob("*.png"))) >= 16)
    assert n == 16 and len(list((tmp_path / "part").rglob("*.png"))) == 16
