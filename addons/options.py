"""The proxy's options: declared once, by the addons, and refused by name.

Each addon declares its options in ``load()`` (``loader.add_option``), as every mitmproxy
addon does; that declaration (type, default, choices, help) is the only one. ``declared``
reads the declarations back without starting anything, so that a command line can derive
its flags from them (as mitmproxy's ``OptManager.make_parser`` does for its own), and
``configure`` is the one place a value is checked.

A value an addon refuses raises ``OptionError``: the option's name and the problem kept
apart, so each front end names the setting as its user wrote it (``exportjobs_gate`` under
``mitmdump --set``, ``--gate`` for ``exportjobs proxy``), without reading it out of a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mitmproxy import addonmanager, exceptions, options


class OptionError(exceptions.OptionsError):
    """``option`` cannot take the value it was given; ``problem`` says why and what to do."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option
        self.problem = problem


class _Declarations:
    """What ``Loader`` needs of a master to declare options: only ``options``."""

    def __init__(self, opts: options.Options) -> None:
        self.options = opts


def declared(addons: Iterable[Any]) -> options.Options:
    """mitmproxy's own options plus those ``addons`` declare in ``load()``; nothing runs
    (``load`` only declares: hooks that act come later, in ``configure``)."""
    opts = options.Options()
    loader = addonmanager.Loader(_Declarations(opts))
    for addon in addons:
        load = getattr(addon, "load", None)
        if load is not None:
            load(loader)
    return opts


__all__ = ["OptionError", "declared"]
