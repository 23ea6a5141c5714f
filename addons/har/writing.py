"""The imported cassette on disk: written beside the target, loaded and indexed as replay
would, then moved into place (never over an existing file without --force)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from exportjobs.addons.cassette import (
    new_header,
)
from exportjobs.addons.har.entries import Imported
from exportjobs.addons.persister import CassetteError, CassetteWriter, fsync_dir
from exportjobs.graph import graph_time


def import_header(imported: Imported, tool: str, source: str) -> dict[str, Any]:
    header = new_header(graph_time(imported.started), tool)
    header["imported_from"] = source
    return header


async def write_cassette(path: str | os.PathLike[str], header: dict[str, Any],
                         interactions: Iterable[dict[str, Any]], force: bool) -> None:
    """Write a new cassette at ``path`` with the project's writer, all or nothing: into a
    temporary file beside it, fsynced, checked to load and index as replay loads it, and
    only then linked into place (``force``: renamed over an existing one). A crash at any
    point leaves either no cassette (or the old one) or the complete new one."""
    from exportjobs.addons.matching import load_index

    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.importing")
    writer = CassetteWriter(temp, header)
    try:
        try:  # appended together, so the writer's group commit fsyncs them once
            await asyncio.gather(*(writer.append(item) for item in interactions))
        finally:
            await writer.close()
        load_index(temp)
        _place(temp, path, force)
    finally:
        try:
            os.unlink(temp)
        except FileNotFoundError:
            pass


def _place(temp: Path, path: Path, force: bool) -> None:
    if force:
        os.replace(temp, path)
    else:
        try:
            os.link(temp, path)  # fails if the cassette appeared meanwhile: never overwritten
        except FileExistsError:
            raise CassetteError(path, "already exists", "pass --force to replace it") from None
        except OSError:  # a file system without hard links
            if path.exists():
                raise CassetteError(path, "already exists", "pass --force to replace it") from None
            os.replace(temp, path)
    fsync_dir(path.parent)
