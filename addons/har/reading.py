"""Reading a HAR someone shares: bounded in size, a regular file, JSON with a ``log``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from exportjobs.addons.har.common import MAX_HAR_BYTES, HarError


def read_har(path: str | os.PathLike[str], max_bytes: int = MAX_HAR_BYTES) -> dict[str, Any]:
    """The HAR at ``path`` parsed, if it is a regular file of at most ``max_bytes`` bytes of
    JSON with a ``log.entries`` list; raises ``HarError`` otherwise."""
    path = Path(path)
    try:
        with open(path, "rb") as file:
            info = os.fstat(file.fileno())
            if not _regular(info.st_mode):
                raise HarError(path, "", "is not a regular file", "pass the .har file itself")
            if info.st_size > max_bytes:
                raise HarError(path, "", f"is {info.st_size:,} bytes, more than the "
                               f"{max_bytes:,} this reads by default",
                               "export fewer requests, or pass --max-size MB if you trust it")
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise HarError(path, "", "no such file", "check the path") from None
    except IsADirectoryError:
        raise HarError(path, "", "is a folder", "pass the .har file inside it") from None
    except OSError as exc:
        raise HarError(path, "", f"cannot be read ({exc.strerror})", "check its permissions") from None
    if len(data) > max_bytes:
        raise HarError(path, "", f"is more than {max_bytes:,} bytes", "pass --max-size MB")
    try:
        text = data.decode("utf-8-sig")  # the HAR spec lets writers put a BOM first
    except UnicodeDecodeError as exc:
        raise HarError(path, f"byte {exc.start}", "is not UTF-8 text",
                       "a HAR is UTF-8 JSON; export it again from the browser or tool") from None
    try:
        har = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HarError(path, f"line {exc.lineno} column {exc.colno}", f"is not JSON ({exc.msg})",
                       "pass a .har file as a browser or proxy saves it") from None
    except (ValueError, RecursionError) as exc:
        raise HarError(path, "", f"is not JSON this reads ({str(exc)[:100] or 'nested too deeply'})",
                       "pass a .har file as a browser or proxy saves it") from None
    log = har.get("log") if isinstance(har, dict) else None
    if not isinstance(log, dict) or not isinstance(log.get("entries"), list):
        raise HarError(path, "log.entries", "is missing: this is JSON but not a HAR",
                       "pass a HAR (an object with log.entries)")
    return har


def _regular(mode: int) -> bool:
    import stat

    return stat.S_ISREG(mode)
