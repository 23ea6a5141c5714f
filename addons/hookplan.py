"""mitmproxy's addon manager, with each event's handlers looked up once rather than per event.

Stock mitmproxy finds an event's handlers by walking the whole addon tree every time: about
35 addons, each through a generator, a ``getattr`` and a context manager, for every one of
the eight events an HTTP flow fires (four hooks, each followed by ``update``) and for the
``add_log`` after each log line. Measured on mitmproxy 11: 60-70 µs an event, 431 µs of a
flow's 1,000-1,300 µs of proxy CPU.

``PlannedAddons`` keeps, per event name, what that walk finds (a plan): the handlers in the
walk's order, grouped by top-level addon, which is the boundary of mitmproxy's ``safecall``
(an error is logged and skips the rest of that addon's tree only). A top-level addon whose
tree holds anything unusual (a hook name bound to something not callable, a tree that raises
when read, an async handler for a synchronous event) is walked as stock walks it.

The plans hold while the tree cannot change, and the stock walk takes over wherever it can:
- every change to the tree (``register``, ``remove``, ``clear``) and every lifecycle event
  (``load``, ``configure``, ``running``, ``done``), where addons such as the script loader
  rebuild their children, drops the plans; while one is under way, events are walked as
  stock walks them and no plan is made;
- an event that sees the tree change while it runs (a handler awaits, and a script reloads
  meanwhile) finishes as the stock walk would have: on from where that walk stood in the
  lists it was walking, reading each addon's children as it gets to them.

An addon that changes its children or its hook attributes outside these (mitmproxy asks
addons that manage addons to use ``register``) is seen from the next lifecycle event on.
Only processes this package starts use it (``start_proxy``); a mitmproxy that loads the
addons as a script keeps its own manager.
"""

from __future__ import annotations

import contextlib
import inspect
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from mitmproxy import exceptions, hooks
from mitmproxy.addonmanager import AddonManager, safecall
from mitmproxy.master import Master

# Events around which the addon tree may change: never planned, and they drop the plans.
LIFECYCLE = frozenset({"load", "configure", "running", "done"})


# Where the walk stands at an addon: the lists it is walking, outermost first (the first is
# ``[top]``), each with the index of the addon taken from it.
Place = tuple[tuple[list[Any], int], ...]


class Call(NamedTuple):
    addon: Any
    handler: Callable[..., Any]
    place: Place


class Top(NamedTuple):
    """A top-level addon in a plan, and what the walk calls in its tree."""

    position: int  # its place in the chain the plan was made from
    addon: Any
    calls: tuple[Call, ...]
    plain: bool  # False: walked as stock walks it (see the module's docstring)
    plain_sync: bool  # also False when a handler is async (the sync form refuses it)


Plan = tuple[Top, ...]


class PlannedAddons(AddonManager):
    """An ``AddonManager`` that triggers each event from a plan made on its first use."""

    def __init__(self, master: Master) -> None:
        super().__init__(master)
        self._plans: dict[str, Plan] = {}
        self._generation = 0  # moves on whenever the tree may have changed
        self._changing = 0  # > 0 while it may be changing: no plan is made or used

    @contextlib.contextmanager
    def _tree_may_change(self) -> Iterator[None]:
        self._plans.clear()
        self._generation += 1
        self._changing += 1
        try:
            yield
        finally:
            self._changing -= 1
            self._generation += 1
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

    async def trigger_event(self, event: hooks.Hook) -> None:
        if event.name in LIFECYCLE:
            with self._tree_may_change():
                await super().trigger_event(event)
            return
        if self._changing:
            await super().trigger_event(event)
            return
        generation, chain, args = self._generation, self.chain, event.args()
        for top in self._planned(event.name):
            try:
                with safecall():
                    if not top.plain:
                        await self.invoke_addon(top.addon, event)
                    else:
                        for call in top.calls:
                            result = call.handler(*args)
                            if result is not None and inspect.isawaitable(result):
                                await result
                            if self._generation != generation:
                                for _, func in _hooks_after(call, event.name):
                                    result = func(*event.args())
                                    if result is not None and inspect.isawaitable(result):
                                        await result
                                break
            except exceptions.AddonHalt:
                return
            if self._generation != generation:  # the rest as the stock walk reads it now
                for rest in _after(chain, top.position):
                    try:
                        with safecall():
                            await self.invoke_addon(rest, event)
                    except exceptions.AddonHalt:
                        return
                return

    def trigger(self, event: hooks.Hook) -> None:
        """The synchronous form, which mitmproxy uses for ``add_log`` (each log line) and
        the ``update`` of flow commands: planned the same way."""
        if event.name in LIFECYCLE:
            with self._tree_may_change():
                super().trigger(event)
            return
        if self._changing:
            super().trigger(event)
            return
        generation, chain, args = self._generation, self.chain, event.args()
        for top in self._planned(event.name):
            try:
                with safecall():
                    if not top.plain_sync:
                        self.invoke_addon_sync(top.addon, event)
                    else:
                        for call in top.calls:
                            call.handler(*args)
                            if self._generation != generation:
                                for rest_addon, func in _hooks_after(call, event.name):
                                    if inspect.iscoroutinefunction(func):
                                        raise exceptions.AddonManagerError(
                                            f"Async handler {event.name} ({rest_addon}) cannot "
                                            "be called from sync context")
                                    func(*event.args())
                                break
            except exceptions.AddonHalt:
                return
            if self._generation != generation:
                for rest in _after(chain, top.position):
                    try:
                        with safecall():
                            self.invoke_addon_sync(rest, event)
                    except exceptions.AddonHalt:
                        return
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
        for position, top in enumerate(self.chain):
            calls: list[Call] = []
            plain = plain_sync = True
            try:
                for addon, place in _walk([top], ()):
                    handler = getattr(addon, name, None)
                    if not handler or isinstance(handler, types.ModuleType):
                        continue  # a module imported under a hook's name is no handler (as stock)
                    if not callable(handler):
                        plain = False  # the stock walk raises, logged, at this point
                        break
                    calls.append(Call(addon, handler, place))
                    plain_sync = plain_sync and not inspect.iscoroutinefunction(handler)
            except Exception:  # noqa: BLE001 - the stock walk raises it too, logged there
                plain = False
            if calls or not plain:
                plan.append(Top(position, top, tuple(calls), plain, plain and plain_sync))
        return tuple(plan)


def _walk(addons: list[Any], outer: Place, start: int = 0) -> Iterator[tuple[Any, Place]]:
    """mitmproxy's ``traverse`` from ``addons[start]`` on, with where it stands at each addon:
    a list is read by index as a ``for`` loop reads it, and an addon's children when the
    walk gets to them, after the addon itself has been handled."""
    if not isinstance(addons, (list, tuple)):  # any other iterable: as a for loop takes it
        addons = list(addons)
    index = start
    while index < len(addons):
        addon = addons[index]
        place = (*outer, (addons, index))
        index += 1
        yield addon, place
        if hasattr(addon, "addons"):
            yield from _walk(addon.addons, place)


def _hooks_after(call: Call, name: str) -> Iterator[tuple[Any, Callable[..., Any]]]:
    """The stock walk's handlers after ``call``, had the walk been under way when the tree
    changed: the lists it was in are walked on from where it stood, reading each addon's
    children as it gets to them (as ``_iter_hooks`` over ``traverse`` does)."""
    def rest() -> Iterator[Any]:
        if hasattr(call.addon, "addons"):
            yield from (addon for addon, _ in _walk(call.addon.addons, ()))
        for depth in range(len(call.place) - 1, -1, -1):
            addons, index = call.place[depth]
            yield from (addon for addon, _ in _walk(addons, (), index + 1))

    for addon in rest():
        func = getattr(addon, name, None)
        if not func or isinstance(func, types.ModuleType):
            continue
        if not callable(func):
            raise exceptions.AddonManagerError(f"Addon handler {name} ({addon}) not callable")
        yield addon, func


def _after(chain: list[Any], index: int) -> Iterator[Any]:
    """The top-level addons after ``index`` in ``chain``, as a ``for`` loop over the list
    sees them (it is the list the stock walk holds: an addon added meanwhile is included)."""
    index += 1
    while index < len(chain):
        yield chain[index]
        index += 1


def plan_hooks(master: Master, manager: type[PlannedAddons] = PlannedAddons) -> AddonManager:
    """Give ``master`` a ``PlannedAddons`` in place of its stock manager, keeping the addons
    it already has (``WebMaster`` adds its own while it is built) and the stock manager's
    place among the listeners to option changes, and return the manager in use. A manager
    or a signal not shaped as the ones this was written against (mitmproxy 11 and 12) is
    kept as it is: slower, never wrong."""
    stock = master.addons
    receivers = getattr(master.options.changed, "receivers", None)
    if type(stock) is not AddonManager or not isinstance(receivers, list):
        return stock
    place = next((k for k, ref in enumerate(receivers)
                  if isinstance(ref, weakref.WeakMethod) and ref() == stock._configure_all), None)
    if place is None:
        return stock
    planned = manager(master)  # connects itself last; moved to the stock one's place
    receivers[place] = receivers.pop()
    planned.chain, planned.lookup = stock.chain, stock.lookup
    master.addons = planned
    return planned
