"""Value types of the command line's flags, shared by its commands, and waiting for a stop."""

from __future__ import annotations

import argparse
import asyncio
import re
import signal

from exportjobs.graph import is_guid

MAX_SECONDS = 86_400.0  # a day: beyond it the emulator's clock arithmetic gains nothing


def non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 <= value <= MAX_SECONDS:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_SECONDS:g}, got {text!r}")
    return value


def port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def guid(text: str) -> str:
    if not is_guid(text):
        raise argparse.ArgumentTypeError(f"expected a GUID like 9ab0fcab-c1d4-4b26-963b-a3c33155f853, got {text!r}")
    return text


def positive(text: str) -> float:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


BASE_URL = re.compile(r"^https?://[^/\s]+/?$")


async def until_signalled() -> None:
    """Wait for Ctrl-C or SIGTERM, so servers can close cleanly (and flush what they hold)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, AttributeError):  # Windows: no loop signal handlers
            signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stop.set))
    await stop.wait()
