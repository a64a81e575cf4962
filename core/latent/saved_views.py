"""Saved views of the dataset browser (FiftyOne's `save_view`, in small): a named query, class filter and sort order,
kept with the workspace and re-applied with a click. Qt-free; the Dataset tab stores them as plain JSON values.

A view is the *recipe*, never the images it showed: applied again (after a restart, with another model or on another
dataset) the query is re-run on what is shown now, so the count on screen is always today's. A view remembers where
it was saved (dataset, model, split) and how many images it showed then, so applying it elsewhere can say so.

Names are what the user reads in the list: non-empty, at most `MAX_NAME` characters, unique without regard to case.
A view whose query is not in the query language is never saved; a view read back from a workspace that is not a
well-formed view is dropped (a file edited by hand gives fewer views, never a crash).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from core.errors import UserError
from core.latent.query import SORT_KEYS, parse_query

MAX_NAME = 60
MAX_VIEWS = 200


@dataclass(frozen=True)
class SavedView:
    name: str
    query: str = ""                 # the query box's text ("" keeps every image)
    class_name: str = ""            # the class box's choice by name ("" = all classes)
    sort: str = "index"             # one of core.latent.query.SORT_KEYS
    descending: bool = False
    split: str = "test"
    dataset: str = ""               # where it was saved: the dataset's name ...
    model: str = ""                 # ... the shown model's name ...
    count: int = 0                  # ... and how many images it showed there
    total: int = 0                  # of the split's images

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Any) -> SavedView | None:
        """The view in `d` (a workspace's JSON), or None when it is not one: a wrong type or an unknown sort key."""
        if not isinstance(d, dict) or not isinstance(d.get("name"), str) or not d["name"].strip():
            return None
        kwargs = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            value, kind = d[f.name], type(f.default) if f.name != "name" else str
            if type(value) is not kind:
                return None
            kwargs[f.name] = value
        view = cls(**kwargs)
        return view if view.sort in SORT_KEYS else None

    def origin(self) -> str:
        """Where it was saved, for a tooltip or a status line: 'digits · digits-vae · test: 23 of 359 images'."""
        where = " · ".join(p for p in (self.dataset, self.model, self.split) if p)
        return f"{where}: {self.count:,} of {self.total:,} images"

    def recipe(self) -> tuple[str, str, str, bool, str]:
        """What it shows (not where it was saved): two views with the same recipe show the same images."""
        return " ".join(self.query.split()), self.class_name.lower(), self.sort, self.descending, self.split

    def saved_elsewhere(self, dataset: str, model: str) -> bool:
        return (self.dataset, self.model) != (dataset, model)

    def describe(self) -> str:
        """What it filters and sorts by, in one line ('class 8 and error > 0.015 · class 8 · by error, descending')."""
        parts = [self.query.strip() or "every image"]
        if self.class_name:
            parts.append(f"class {self.class_name}")
        parts.append(f"by {self.sort}{', descending' if self.descending else ''}")
        return " · ".join(parts)


def check_name(name: str, views: Sequence[SavedView], *, renaming: str | None = None) -> str:
    """The name stripped; UserError (one line) when it is empty, too long or already taken (a rename may keep its
    own name, in another case)."""
    clean = " ".join(str(name).split())
    if not clean:
        raise UserError("a saved view needs a name: type one (e.g. 'badly drawn eights')")
    if len(clean) > MAX_NAME:
        raise UserError(f"a view name is at most {MAX_NAME} characters; this one has {len(clean)}")
    taken = find(views, clean)
    if taken is not None and (renaming is None or taken.name.lower() != renaming.lower()):
        raise UserError(f"a view named {taken.name!r} exists already: choose another name or delete that one first")
    return clean


def check_query(view: SavedView, class_names: Sequence[str]) -> None:
    """UserError (one line, naming the view) when its query or class is not valid on a dataset with `class_names`."""
    try:
        parse_query(view.query, class_names)
    except UserError as exc:
        raise UserError(f"view {view.name!r}: {exc}") from None
    if view.class_name and view.class_name.lower() not in [c.lower() for c in class_names]:
        raise UserError(f"view {view.name!r} keeps class {view.class_name!r}, which this dataset does not have "
                        f"(its classes: {', '.join(class_names)})")
    if view.sort not in SORT_KEYS:
        raise UserError(f"view {view.name!r}: cannot sort by {view.sort!r}; use one of {', '.join(SORT_KEYS)}")


def add_view(views: Sequence[SavedView], view: SavedView, class_names: Sequence[str]) -> list[SavedView]:
    """`views` with `view` added (its name cleaned); UserError when its name or query is not valid, nothing changed."""
    if len(views) >= MAX_VIEWS:
        raise UserError(f"{MAX_VIEWS} views are saved already: delete some before saving another")
    view = replace(view, name=check_name(view.name, views))
    check_query(view, class_names)
    return [*views, view]


def rename_view(views: Sequence[SavedView], old: str, new: str) -> list[SavedView]:
    view = _existing(views, old)
    name = check_name(new, views, renaming=view.name)
    return [replace(v, name=name) if v is view else v for v in views]


def delete_view(views: Sequence[SavedView], name: str) -> list[SavedView]:
    view = _existing(views, name)
    return [v for v in views if v is not view]


def find(views: Sequence[SavedView], name: str) -> SavedView | None:
    key = " ".join(str(name).split()).lower()
    return next((v for v in views if v.name.lower() == key), None)


def _existing(views: Sequence[SavedView], name: str) -> SavedView:
    view = find(views, name)
    if view is None:
        raise UserError(f"there is no saved view named {name!r}")
    return view


def views_from_json(value: Any) -> list[SavedView]:
    """The views in a workspace's value (a list of dicts); anything else, and entries that are not views or repeat a
    name, are left out."""
    out: list[SavedView] = []
    for d in value if isinstance(value, list) else []:
        view = SavedView.from_dict(d)
        if view is not None and find(out, view.name) is None and len(out) < MAX_VIEWS:
            out.append(view)
    return out


def views_to_json(views: Sequence[SavedView]) -> list[dict[str, Any]]:
    return [v.to_dict() for v in views]
