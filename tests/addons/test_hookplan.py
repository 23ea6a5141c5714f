"""``PlannedAddons`` calls what stock mitmproxy's walk calls, in the same order, with the
same error boundaries, and follows the addon tree as it changes (an addon added or removed,
a script reloaded). Each check runs the same scenario through both managers and compares
the call logs; a plan that is never dropped is shown to fail it."""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mitmproxy import exceptions, hooks, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons import default_addons
from mitmproxy.master import Master
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.test import tflow

from exportjobs.addons.compose import Composed
from exportjobs.addons.hookplan import PlannedAddons, plan_hooks
from exportjobs.addons.proxy import start_proxy

Log = list[str]


class Node:
    """An addon that logs each hook it gets, with children of its own."""

    def __init__(self, name: str, log: Log, children: list[Any] | None = None) -> None:
        self.name, self.log, self.addons = name, log, children or []

    def requestheaders(self, flow: Any) -> None:
        self.log.append(f"{self.name}.requestheaders")

    def request(self, flow: Any) -> None:
        self.log.append(f"{self.name}.request")

    def response(self, flow: Any) -> None:
        self.log.append(f"{self.name}.response")

    def error(self, flow: Any) -> None:
        self.log.append(f"{self.name}.error")

    def update(self, flows: Any) -> None:
        self.log.append(f"{self.name}.update")


class Raises(Node):
    """Raises in ``request``: logged by safecall, the rest of its top-level tree skipped."""

    def request(self, flow: Any) -> None:
        self.log.append(f"{self.name}.request")
        raise ValueError("boom")


class Halts(Node):
    """Raises AddonHalt in ``response``: no addon after it gets that event."""

    def response(self, flow: Any) -> None:
        self.log.append(f"{self.name}.response")
        raise exceptions.AddonHalt()


class Awaits(Node):
    """An async handler: awaited before the next one runs."""

    async def request(self, flow: Any) -> None:
        await asyncio.sleep(0)
        self.log.append(f"{self.name}.request(async)")

    async def update(self, flows: Any) -> None:  # refused when triggered synchronously
        self.log.append(f"{self.name}.update(async)")


class Odd:
    """Hook names bound to things that are not handlers: a module (skipped) and a number
    (an error, logged)."""

    name = "odd"
    request = types.ModuleType("request")
    error = 5


SCRIPT = """
def request(flow):
    flow.metadata.setdefault("log", []).append("{version}.request")
"""


async def _fire(master: Master, log: Log, flow: Any) -> None:
    for hook in (http_layer.HttpRequestHeadersHook, http_layer.HttpRequestHook,
                 http_layer.HttpResponseHook, http_layer.HttpErrorHook):
        log.append(f"-- {hook.name}")
        await master.addons.handle_lifecycle(hook(flow))
    log.append("-- update, synchronous (as flow commands send it)")
    master.addons.trigger(hooks.UpdateHook([flow]))
    log.extend(flow.metadata.pop("log", []))


async def scenario(manager: type[AddonManager] | None, script: Path) -> Log:
    """Events through a master (``manager``: None for stock) while its addon tree changes."""
    log: Log = []
    master = Master(options.Options())
    if manager is not None:
        stock = master.addons
        planned = manager(master)
        planned.chain, planned.lookup = stock.chain, stock.lookup
        master.options.changed.disconnect(stock._configure_all)
        master.addons = planned
    master.addons.add(*default_addons())
    parent = Node("parent", log, [Node("a", log), Raises("raises", log), Node("b", log)])
    master.addons.add(Node("first", log), parent, Odd(), Awaits("async", log),
                      Halts("halts", log), Node("after-halt", log))
    flow = tflow.tflow(resp=True, err=True)
    await _fire(master, log, flow)
    await _fire(master, log, flow)  # a second time: now from the plans

    log.append("== one removed")
    master.addons.remove(master.addons.get("first"))
    await _fire(master, log, flow)

    log.append("== one added")
    master.addons.add(Node("late", log))
    await _fire(master, log, flow)

    log.append("== a child added, then an option set (a configure event)")
    parent.addons.append(Node("grown", log))
    master.options.update(anticache=True)
    await _fire(master, log, flow)

    log.append("== a script loaded, then reloaded")
    script.write_text(SCRIPT.format(version="v1"))
    master.options.update(scripts=[str(script)])
    loaded = master.addons.get(f"scriptmanager:{script}")
    for _ in range(200):  # the script loader loads it on its watcher task
        if loaded.ns is not None:
            break
        await asyncio.sleep(0.01)
    await _fire(master, log, flow)
    script.write_text(SCRIPT.format(version="v2"))
    loaded.loadscript()  # what the watcher does when the file changes
    await _fire(master, log, flow)
    master.options.update(scripts=[])
    await _fire(master, log, flow)
    loaded.done()
    return log


async def test_plans_call_what_the_stock_walk_calls(tmp_path: Path) -> None:
    stock = await scenario(None, tmp_path / "stock.py")
    planned = await scenario(PlannedAddons, tmp_path / "planned.py")
    assert planned == stock
    # The scenario reaches what it claims to: errors, halts, changes and reloads.
    assert "b.request" not in stock and "after-halt.response" not in stock
    assert "async.request(async)" in stock and "async.update(async)" in stock
    synchronous = _part(stock, "-- update, synchronous (as flow commands send it)")
    assert "parent.update" in synchronous and "async.update(async)" not in synchronous
    for seen in ("late.request", "grown.requestheaders", "v1.request", "v2.request"):
        assert seen in stock
    tail = stock[stock.index("== a script loaded, then reloaded"):]
    assert tail.count("v1.request") == 1 and tail.count("v2.request") == 1


class KeptAcrossRegistration(PlannedAddons):
    """Broken: plans kept when an addon is registered or removed."""

    def register(self, addon: Any) -> Any:
        return AddonManager.register(self, addon)

    def remove(self, addon: Any) -> None:
        AddonManager.remove(self, addon)


class KeptAcrossConfigure(PlannedAddons):
    """Broken: plans kept across configure events (where children are rebuilt)."""

    def trigger(self, event: Any) -> None:
        AddonManager.trigger(self, event)


def _part(log: Log, title: str) -> Log:
    """The log from ``title`` to the next title of its kind (``== `` a step, ``-- `` an event)."""
    start = log.index(title)
    ends = [i for i, line in enumerate(log) if line.startswith(title[:3]) and i > start]
    return log[start:ends[0] if ends else len(log)]


class NeverDropped(KeptAcrossRegistration, KeptAcrossConfigure):
    """Broken: plans kept across both."""


@pytest.mark.parametrize(("broken", "part", "missed"), [
    (KeptAcrossRegistration, "== one removed", "first.requestheaders"),
    (KeptAcrossConfigure, "== a child added, then an option set (a configure event)",
     "grown.requestheaders"),
    (NeverDropped, "== a script loaded, then reloaded", "v2.request"),
], ids=["removed addon still called", "new child not called", "reloaded script not called"])
async def test_a_plan_not_dropped_fails_the_comparison(tmp_path: Path, broken: type,
                                                      part: str, missed: str) -> None:
    stock = await scenario(None, tmp_path / "stock.py")
    stale = await scenario(broken, tmp_path / "stale.py")
    assert stale != stock
    assert (missed in _part(stale, part)) != (missed in _part(stock, part))


@pytest.mark.parametrize("web", [False, True], ids=["headless", "web UI"])
async def test_the_proxy_runs_on_planned_addons(tmp_path: Path, web: bool) -> None:
    proxy = await start_proxy({"exportjobs_mode": "passthrough", "confdir": tmp_path},
                              web_port=0 if web else None)
    try:
        assert isinstance(proxy.master.addons, PlannedAddons)
        assert proxy.master.addons.get("proxyserver") is not None
        assert any(isinstance(addon, Composed) for addon in proxy.master.addons.chain)
    finally:
        await proxy.close()


def test_plan_hooks_keeps_the_addons_and_the_option_wiring() -> None:
    async def check() -> None:
        master = Master(options.Options())
        master.addons.add(*default_addons())
        before = list(master.addons.chain)
        planned = plan_hooks(master)
        assert isinstance(planned, PlannedAddons)
        assert master.addons is planned and planned.chain == before
        seen: list[set[str]] = []
        configure: Callable[[set[str]], None] = seen.append
        planned.add(types.SimpleNamespace(name="watcher", configure=configure))
        seen.clear()
        master.options.update(anticache=True)
        assert seen == [{"anticache"}]  # once: the stock manager no longer listens

    asyncio.run(check())


def test_an_unfamiliar_manager_is_kept() -> None:
    class Other(AddonManager):
        pass

    async def check() -> None:
        master = Master(options.Options())
        master.addons = Other(master)
        assert plan_hooks(master) is master.addons and type(master.addons) is Other

    asyncio.run(check())
