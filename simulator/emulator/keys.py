"""The emulator's configuration and the state it keeps on its application: one hub.

Every piece of state lives on the root ``web.Application`` under one of these typed keys,
set once by ``create_app``. Handlers read it with ``request.config_dict[KEY]``, which
finds it from the root app and from the control sub-app alike (in a sub-app,
``request.app`` is the sub-app, which holds none of it).

- ``CONFIG``: the ``EmulatorConfig`` the app was built with (read-only).
- ``STORE``: the ``Store`` (see ``store``): the jobs, the arrival log of creates, the clock
  every job's status is computed from, and the known organizations; in this process's
  memory, or in Redis when ``store_url`` names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from aiohttp import web

from exportjobs.simulator.emulator.store import Store

# Which shapes the emulator answers in. "none": Graph's metadata, OData's JSON format and
# every SDK generated from them (get-one is the bare entity, the inner error is innerError).
# "documented": the shapes of the docs page's examples (get-one wrapped in {"value": ...},
# the 409's inner error spelled innererror), so a client can be tested against both.
Quirks = Literal["none", "documented"]
QUIRKS: tuple[Quirks, ...] = ("none", "documented")


@dataclass
class EmulatorConfig:
    """How the emulated service behaves; fixed for the life of one app."""

    start_after: float = 2.0  # seconds a job stays notStarted
    run_for: float = 5.0  # seconds it then stays running
    known_organizations: list[str] | None = None  # None: every organization exists
    unsafe_race_window_ms: float = 0.0  # > 0: a deliberately broken create, for race tests
    max_body_bytes: int = 1024 * 1024
    retry_after_cap_s: int = 60
    arrival_log_size: int = 100_000
    quirks: Quirks = "none"  # "documented": the docs examples' shapes (see QUIRKS)
    store_url: str | None = None  # "redis://HOST:PORT/DB": state shared in Redis; None: memory

    def __post_init__(self) -> None:
        if self.quirks not in QUIRKS:
            raise ValueError(f"quirks must be one of {', '.join(QUIRKS)}, not {self.quirks!r}")
        if self.store_url is not None and not self.store_url.startswith(("redis://", "unix://")):
            raise ValueError(f"store must be a redis://HOST:PORT/DB URL, not {self.store_url!r}")


CONFIG = web.AppKey("config", EmulatorConfig)
STORE: web.AppKey[Store] = web.AppKey("store")

__all__ = ["CONFIG", "QUIRKS", "STORE", "EmulatorConfig", "Quirks"]
