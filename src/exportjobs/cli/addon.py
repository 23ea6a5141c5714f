"""``exportjobs addon``: where the mitmproxy script is, for ``mitmdump -s``."""

from __future__ import annotations

import argparse
from pathlib import Path


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("addon", help="print the path of the mitmproxy script, for mitmdump -s",
                       description='Use: mitmdump -s "$(exportjobs addon)" --set '
                       "exportjobs_mode=record --set exportjobs_cassette=FILE. The mitmproxy "
                       "that loads it must be able to import exportjobs (for pipx: pipx inject "
                       "mitmproxy exportjobs).")
    p.set_defaults(func=_addon)


def _addon(args: argparse.Namespace) -> int:
    import exportjobs.addons

    print(Path(exportjobs.addons.__file__).with_name("mitmproxy_script.py"))
    return 0
