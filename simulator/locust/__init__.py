"""Load phases on Locust (``exportjobs run --engine locust``).

``import locust`` monkey-patches the whole process with gevent: threads become greenlets,
sockets and selectors cooperative. The runner's embedded emulator (a thread blocking on
its start), asyncio and mitmproxy do not survive that (tried: the emulator never starts).
So locust is imported only in the processes this package starts for it: the master
(``python -m exportjobs.simulator.locust.master``) and its workers
(``python -m exportjobs.simulator.locust.worker``, or ``exportjobs locust-worker`` on
another machine), and there only in their ``main``, first thing: importing any module of
this package patches nothing. The runner's side (``engine``) and the wire format (``wire``)
are plain Python and never import locust.
"""

from __future__ import annotations

import importlib.util

INSTALL_HINT = "the Locust engine needs the locust extra: pip install 'exportjobs[locust]'"
DEFAULT_PORT = 5557  # Locust's own default master port


def available() -> bool:
    """Whether locust is installed (found, not imported: importing it patches the process)."""
    return importlib.util.find_spec("locust") is not None
