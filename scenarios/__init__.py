"""Shipped scenarios (YAML) and the scenario JSON Schema, installed with the package.

``exportjobs scenarios`` lists them, ``exportjobs run NAME`` runs one by name, and
``exportjobs scenarios copy NAME [DIR]`` writes an editable copy. Each shipped scenario
names its schema as ``scenario.schema.json`` beside it, so a copy written together with
the schema keeps working in editors.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import yaml

SCHEMA_FILE = "scenario.schema.json"
SUFFIX = ".yaml"


def _folder() -> Path:
    # Installed packages are folders on disk (setuptools installs are never zipped).
    return Path(str(resources.files(__name__)))


def schema_text() -> str:
    return (_folder() / SCHEMA_FILE).read_text(encoding="utf-8")


def names() -> list[str]:
    """The shipped scenarios' names (file names without ``.yaml``), sorted."""
    return sorted(p.name[: -len(SUFFIX)] for p in _folder().glob(f"*{SUFFIX}"))


def path(name: str) -> Path | None:
    """The shipped scenario called ``name`` (with or without ``.yaml``), or None."""
    stem = name[: -len(SUFFIX)] if name.endswith(SUFFIX) else name
    if stem not in names():
        return None
    return _folder() / f"{stem}{SUFFIX}"


def summary(name: str) -> str:
    """The first sentence of a shipped scenario's ``description``, on one line."""
    found = path(name)
    try:
        data = yaml.safe_load(found.read_text(encoding="utf-8")) if found else None
    except yaml.YAMLError:
        data = None
    text = " ".join(str(data.get("description", "")).split()) if isinstance(data, dict) else ""
    first, dot, _ = text.partition(". ")
    return first + ("." if dot else "")


def copy(name: str, folder: Path) -> Path:
    """Write shipped scenario ``name`` and the schema into ``folder``; returns the copy.

    Raises FileNotFoundError for an unknown name and FileExistsError rather than overwrite
    a scenario that is already there (the schema beside it is refreshed).
    """
    source = path(name)
    if source is None:
        raise FileNotFoundError(name)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / source.name
    if target.exists():
        raise FileExistsError(str(target))
    shutil.copyfile(source, target)
    shutil.copyfile(_folder() / SCHEMA_FILE, folder / SCHEMA_FILE)
    return target
