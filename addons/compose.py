"""The addons as one object in mitmproxy's hook walk.

mitmproxy finds an addon's hooks by walking every addon object (and its ``addons``, with a
recursive generator) for every hook event, several times per request. Three addons of
which two are off in most runs (faults, the race gate) cost that walk three objects, and
through ``mitmdump -s`` four levels deep. ``Composed`` stands in the walk for all of them:
for each hook it holds the one thing mitmproxy has to call, worked out again whenever an
addon turns its hooks on or off (``FailClosed.take_part``):

- no addon has the hook (or all have it off): None, which mitmproxy skips;
- one addon has it: that addon's own (guarded) bound method, called directly;
- several: a function calling them in the addons' order, each awaited before the next one
  is called, exactly as mitmproxy calls separate addons.

Every hook stays the addon's own guarded one (``addons.guard``); nothing is caught here.
The addons are not registered with mitmproxy themselves, so no hook is called twice.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

# The hook classes register their names in mitmproxy.hooks as their modules are imported:
# these hold the hooks a walk asks for (lifecycle, flow, server connection).
import mitmproxy.addonmanager
import mitmproxy.proxy.layers.http
import mitmproxy.proxy.server_hooks  # noqa: F401
from mitmproxy import hooks

from exportjobs.addons.guard import FailClosed

_LIFECYCLE = ("load", "configure", "running", "done")


def hook_names() -> tuple[str, ...]:
    """Every hook name mitmproxy knows."""
    return tuple(sorted(hooks.all_hooks))


def _in_order(funcs: Sequence[Callable[..., Any]]) -> Callable[..., Any]:
    """One hook calling ``funcs`` in order, as mitmproxy's ``invoke_addon`` calls separate
    addons: each one's awaitable is awaited before the next is called. Sync while every
    one returns None (mitmproxy awaits only what a hook returns)."""

    def in_order(*args: Any) -> Awaitable[None] | None:
        for i, func in enumerate(funcs):
            result = func(*args)
            if result is not None and inspect.isawaitable(result):
                return _rest(result, funcs[i + 1:], args)
        return None

    return in_order


async def _rest(pending: Awaitable[Any], funcs: Sequence[Callable[..., Any]],
                args: tuple[Any, ...]) -> None:
    await pending
    for func in funcs:
        result = func(*args)
        if result is not None and inspect.isawaitable(result):
            await result


class Composed:
    """``addons`` as one addon (see the module's docstring); ``name`` is what mitmproxy's
    ``AddonManager.get`` finds it by."""

    name = "exportjobs"

    def __init__(self, *addons: FailClosed) -> None:
        self.members = addons
        self._finishing: set[asyncio.Task[None]] = set()
        for addon in addons:
            addon.hooks_changed = self._compose
        self._compose()

    def _compose(self) -> None:
        """Set each hook to what mitmproxy must call for it (the lifecycle ones are methods)."""
        for hook in hook_names():
            if hook in _LIFECYCLE:
                continue
            funcs = [func for addon in self.members if (func := getattr(addon, hook, None))]
            if not funcs:
                self.__dict__[hook] = None
            elif len(funcs) == 1:
                self.__dict__[hook] = funcs[0]
            else:
                self.__dict__[hook] = _in_order(funcs)

    def _each(self, hook: str) -> list[Callable[..., Any]]:
        return [func for addon in self.members if (func := getattr(addon, hook, None))]

    def load(self, loader: Any) -> None:
        for func in self._each("load"):
            func(loader)

    def configure(self, updated: set[str]) -> None:
        """Each addon's ``configure`` in order; the first that raises stops the rest, as in
        mitmproxy's own walk."""
        for func in self._each("configure"):
            func(updated)

    def running(self) -> Awaitable[None] | None:
        return _in_order(self._each("running"))()

    def done(self) -> Awaitable[None] | None:
        """Each addon's ``done`` in order. A plain function returning a task: mitmproxy's
        shutdown awaits it, and a script reload (which calls ``done`` without awaiting, and
        refuses coroutine functions) still lets every addon finish, on the event loop."""
        pending = _in_order(self._each("done"))()
        if pending is None:
            return None
        try:
            task = asyncio.get_running_loop().create_task(_awaited(pending))
        except RuntimeError:  # no loop: the caller awaits it
            return pending
        self._finishing.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(self._finishing.discard)
        return task


async def _awaited(pending: Awaitable[Any]) -> None:
    await pending


__all__ = ["Composed", "hook_names"]
