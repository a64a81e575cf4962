"""Saved views of the dataset browser (core.latent.saved_views): names, queries, and reading them back from a
workspace's JSON."""

from __future__ import annotations

import pytest

from core.errors import UserError
from core.latent.saved_views import (
    MAX_NAME,
    SavedView,
    add_view,
    delete_view,
    rename_view,
    views_from_json,
    views_to_json,
)

DIGITS = [str(i) for i in range(10)]
CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def test_a_view_is_saved_under_a_clean_unique_name_and_round_trips_through_json():
    views = add_view([], SavedView("  badly   drawn eights ", "class 8 and error > 0.015", sort="error",
                                   descending=True, dataset="digits", model="digits-vae", count=12, total=359),
                     DIGITS)
    assert [v.name for v in views] == ["badly drawn eights"]
    views = add_view(views, SavedView("cats", class_name="Cat"), CIFAR)
    assert views_from_json(views_to_json(views)) == views
    assert views[0].origin() == "digits · digits-vae · test: 12 of 359 images"
    assert views[0].describe() == "class 8 and error > 0.015 · by error, descending"


@pytest.mark.parametrize(("name", "query", "message"), [
    ("", "", "a saved view needs a name"),
    ("   ", "kl < 3", "a saved view needs a name"),
    ("BADLY drawn  eights", "kl < 3", "a view named 'badly drawn eights' exists already"),
    ("x" * (MAX_NAME + 1), "", f"at most {MAX_NAME} characters"),
    ("broken", "class 8 and", "view 'broken': query: a condition such as"),
    ("eleven", "class 11", "view 'eleven': query: unknown class '11'"),
])
def test_a_bad_name_or_query_is_one_line_and_nothing_is_added(name, query, message):
    views = add_view([], SavedView("badly drawn eights", "class 8"), DIGITS)
    with pytest.raises(UserError, match=message) as err:
        add_view(views, SavedView(name, query), DIGITS)
    assert "\n" not in str(err.value)
    assert [v.name for v in views] == ["badly drawn eights"]


def test_a_view_of_a_class_another_dataset_lacks_is_refused_there():
    (cats,) = add_view([], SavedView("cats", "class cat", class_name="cat"), CIFAR)
    with pytest.raises(UserError, match="view 'cats': query: unknown class 'cat'"):
        add_view([], cats, DIGITS)
    with pytest.raises(UserError, match="keeps class 'cat', which this dataset does not have"):
        add_view([], SavedView("cats", class_name="cat"), DIGITS)


def test_rename_and_delete():
    views = add_view(add_view([], SavedView("a", "kl < 3"), DIGITS), SavedView("b"), DIGITS)
    views = rename_view(views, "a", "A")                   # its own name in another case
    assert [v.name for v in views] == ["A", "b"] and views[0].query == "kl < 3"
    with pytest.raises(UserError, match="'b' exists already"):
        rename_view(views, "A", "B")
    with pytest.raises(UserError, match="no saved view named 'c'"):
        delete_view(views, "c")
    assert [v.name for v in delete_view(views, "a")] == ["b"]


def test_views_read_back_from_a_hand_edited_workspace_leave_out_what_is_not_a_view():
    good = SavedView("eights", "class 8", sort="kl").to_dict()
    value = [good, {"name": 3}, {"name": ""}, {"name": "x", "sort": "colour"}, {"name": "y", "count": "many"},
             "eights", dict(good, query="kl < 1"), {"name": "minimal"}]
    views = views_from_json(value)
    assert [v.name for v in views] == ["eights", "minimal"]    # a repeated name keeps the first
    assert views[0].query == "class 8" and views[1] == SavedView("minimal")
    assert views_from_json({"eights": good}) == [] and views_from_json(None) == []


def test_the_recipe_is_what_it_shows_not_where_it_was_saved():
    a = SavedView("a", "class 8  and kl < 3", class_name="Cat", dataset="digits", count=3)
    b = SavedView("b", "class 8 and kl < 3", class_name="cat", dataset="mnist", count=40)
    assert a.recipe() == b.recipe()
    assert a.saved_elsewhere("mnist", "") and not b.saved_elsewhere("mnist", "")
