"""mitmproxy's addon manager, with each event's handlers looked up once rather than per event.

Stock mitmproxy finds an event's handlers by walking the whole addon tree every time: about
35 addons, each through a generator, a ``getattr`` and a context manager, for every one of
the eight events an HTTP flow fires (four hooks, each followed by ``update``). Measured on
mitmproxy 11: 60-70 µs an event, the largest share of the CPU a replayed flow costs.

``PlannedAddons`` keeps, per event name, the handlers that walk would find, in its order and
grouped by top-level addon: the boundary of mitmproxy's ``safecall``, so an error in one
handler is logged and skips the rest of that addon's tree only, as before. The plans are
dropped whenever the tree can change: an addon added, registered or removed, and any
lifecycle event (load, configure, running, done), where addons such as the script loader
rebuild their children (a script reload removes and registers its module). Between those,
the tree is fixed, so a plan is the walk's result. An addon that changes its children
elsewhere must register or remove them, as mitmproxy asks of addons that manage addons.

Only processes that this package starts use it (``start_proxy``); a mitmproxy that loads the
addons as a script keeps its own manager.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from collections.abc import Callable, Iterator
from typing import Any

from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import AddonManager, safecall, traverse
from mitmproxy.master import Master

# Events around which the addon tree may change: never planned, and they drop the plans.
LIFECYCLE = frozenset({"load", "configure", "running", "done"})

Plan = tuple[tuple[Any, tuple[Callable[..., Any], ...]], ...]


class PlannedAddons(AddonManager):
    """An ``AddonManager`` that triggers each event from a plan made on its first use."""

    def __init__(self, master: Master) -> None:
        super().__init__(master)
        self._plans: dict[str, Plan] = {}

    @contextlib.contextmanager
    def _tree_may_change(self) -> Iterator[None]:
        """Plans dropped before and after: none made while the tree changes outlives it."""
        self._plans.clear()
        try:
            yield
        finally:
            self._plans.clear()

    def register(self, addon: Any) -> Any:
        with self._tree_may_change():
            return super().register(addon)

    def remove(self, addon: Any) -> None:
        with self._tree_may_change():
            super().remove(addon)

    def clear(self) -> None:
        with self._tree_may_change():
            super().clear()

    def trigger(self, event: hooks.Hook) -> None:
        """The synchronous form, which mitmproxy uses for ``add_log`` (each log line) and
        the ``update`` of flow commands: planned as well, async handlers refused as stock."""
        name = event.name
        if name in LIFECYCLE:
            with self._tree_may_change():
                super().trigger(event)
            return
        args = event.args()
        for top, handlers in self._planned(name):
            try:
                with safecall():
                    for handler in handlers:
                        if inspect.iscoroutinefunction(handler):
                            raise exceptions.AddonManagerError(
                                f"Async handler {name} ({getattr(handler, '__self__', top)}) "
                                "cannot be called from sync context")
                        handler(*args)
            except exceptions.AddonHalt:
                return

    async def trigger_event(self, event: hooks.Hook) -> None:
        name = event.name
        if name in LIFECYCLE:
            with self._tree_may_change():
                await super().trigger_event(event)
            return
        args = event.args()
        for _, handlers in self._planned(name):
            try:
                with safecall():
                    for handler in handlers:
                        result = handler(*args)
                        if result is not None and inspect.isawaitable(result):
                            await result
            except exceptions.AddonHalt:
                return

    def _planned(self, name: str) -> Plan:
        plan = self._plans.get(name)
        if plan is None:
            plan = self._plans[name] = self._plan(name)
        return plan

    def _plan(self, name: str) -> Plan:
        """What the stock walk (``_iter_hooks`` over each top-level addon) would call for
        ``name``, leaving out top-level addons that handle nothing."""
        plan = []
        for top in self.chain:
            handlers: list[Callable[..., Any]] = []
            for addon in traverse([top]):
                handler = getattr(addon, name, None)
                if not handler or isinstance(handler, types.ModuleType):
                    continue  # a module imported under a hook's name is no handler (as stock)
                handlers.append(handler if callable(handler) else _not_callable(name, addon))
            if handlers:
                plan.append((top, tuple(handlers)))
        return tuple(plan)


def _not_callable(name: str, addon: Any) -> Callable[..., None]:
    """Stands where stock mitmproxy raises for a handler it cannot call: the same error,
    raised at the same point of the walk, logged by the same ``safecall``."""
    def refuse(*_: Any) -> None:
        raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")
    return refuse


def plan_hooks(master: Master) -> AddonManager:
    """Give ``master`` a ``PlannedAddons`` in place of its stock manager, keeping the addons
    it already has (``WebMaster`` adds its own while it is built), and return the manager in
    use. A manager not shaped as the one this was written against (mitmproxy 11 and 12) is
    kept as it is: slower, never wrong."""
    stock = master.addons
    if type(stock) is not AddonManager or not hasattr(stock, "_configure_all"):
        return stock
    planned = PlannedAddons(master)
    planned.chain, planned.lookup = stock.chain, stock.lookup
    master.options.changed.disconnect(stock._configure_all)
    master.addons = planned
    return planned
