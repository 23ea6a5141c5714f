"""``PlannedAddons`` calls what stock mitmproxy's walk calls, in the same order, with the
same error boundaries and the same errors logged, and follows the addon tree as it changes:
between events (an addon added or removed, a script reloaded, children rebuilt in a
lifecycle event) and while an event is under way. Each check runs one scenario through both
managers and compares the logs; deliberately broken managers are shown to fail them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from mitmproxy import ctx, exceptions, hooks, io, options
from mitmproxy.addonmanager import AddonManager
from mitmproxy.addons import default_addons
from mitmproxy.master import Master
from mitmproxy.proxy.layers import http as http_layer
from mitmproxy.test import tflow

from exportjobs.addons.compose import Composed
from exportjobs.addons.hookplan import LIFECYCLE, PlannedAddons, plan_hooks
from exportjobs.addons.proxy import start_proxy

Log = list[str]
Manager = type[PlannedAddons] | None  # None: mitmproxy's stock manager


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


class HearsLogs(Node):
    """Also gets ``add_log``, which mitmproxy triggers for each log line."""

    def add_log(self, entry: Any) -> None:
        if "test line" in entry.msg:
            self.log.append(f"{self.name}.add_log({entry.msg.partition('test line')[2]})")


class Raises(Node):
    """Raises in ``request``: logged by safecall, the rest of its top-level tree skipped."""

    def request(self, flow: Any) -> None:
        self.log.append(f"{self.name}.request")
        raise ValueError("boom")


class Halts(Node):
    """Raises AddonHalt in ``response`` and in the synchronous ``update``: no addon after it
    gets that event."""

    def response(self, flow: Any) -> None:
        self.log.append(f"{self.name}.response")
        raise exceptions.AddonHalt()

    def update(self, flows: Any) -> None:
        self.log.append(f"{self.name}.update")
        if flows and flows[0].metadata.get("synchronous"):
            raise exceptions.AddonHalt()


class Awaits(Node):
    """Async handlers: awaited before the next one runs, refused when triggered
    synchronously (which the log shows, as nothing runs before the refusal)."""

    async def request(self, flow: Any) -> None:
        await asyncio.sleep(0)
        self.log.append(f"{self.name}.request(async)")

    async def update(self, flows: Any) -> None:
        self.log.append(f"{self.name}.update(async)")


class Odd:
    """Hook names bound to things that are not handlers: a module (skipped) and a number
    (an error, logged), with a child after them that the error then skips."""

    name = "odd"
    request = types.ModuleType("request")
    error = 5

    def __init__(self, log: Log) -> None:
        self.addons = [Node("odd-child", log)]


class Unreadable:
    """A tree that raises when read, once registered: the walk's error is logged on every
    event."""

    name = "unreadable"
    broken = False

    @property
    def addons(self) -> list[Any]:
        if self.broken:
            raise RuntimeError("children unreadable")
        return []



class Rebuilds(Node):
    """Rebuilds its children in ``running``, a lifecycle event, without registering them."""

    def running(self) -> None:
        self.addons = [Node(f"{self.name}-rebuilt", self.log)]


SCRIPT = """
def request(flow):
    flow.metadata.setdefault("log", []).append("{version}.request")
"""


@contextlib.contextmanager
def logged_errors(log: Log) -> Iterator[None]:
    """What mitmproxy's addon manager logs goes into ``log`` (object addresses taken out)."""
    class Into(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            first = record.getMessage().splitlines()[0]
            log.append("logged: " + re.sub(r" at 0x[0-9a-f]+", "", first))

    handler = Into(logging.ERROR)
    logger = logging.getLogger("mitmproxy.addonmanager")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


@contextlib.asynccontextmanager
async def master_with(manager: Manager, *, defaults: bool = True,
                      log_events: bool = True) -> AsyncIterator[Master]:
    """A master with mitmproxy's default addons (or none); without ``log_events``, log lines
    trigger no ``add_log`` (an error logged on every event would then feed itself)."""
    master = Master(options.Options())
    if not log_events:
        master._legacy_log_events.uninstall()
    if defaults:
        master.addons.add(*default_addons())
    if manager is not None:
        assert type(plan_hooks(master, manager)) is manager
    try:
        yield master
    finally:
        master._legacy_log_events.uninstall()  # it logs to this master's loop, which ends here
        loader = master.addons.get("scriptloader")
        for script in getattr(loader, "addons", []):
            script.done()


async def _fire(master: Master, log: Log, flow: Any) -> None:
    for hook in (http_layer.HttpRequestHeadersHook, http_layer.HttpRequestHook,
                 http_layer.HttpResponseHook, http_layer.HttpErrorHook):
        log.append(f"-- {hook.name}")
        await master.addons.handle_lifecycle(hook(flow))
    log.append("-- update, synchronous (as flow commands send it)")
    flow.metadata["synchronous"] = True
    master.addons.trigger(hooks.UpdateHook([flow]))
    del flow.metadata["synchronous"]
    log.append("-- add_log (a log line)")
    logging.getLogger("exportjobs.test").warning("test line %d", len(log))
    await asyncio.sleep(0.01)  # mitmproxy hands it to the loop
    log.extend(flow.metadata.pop("log", []))


async def scenario(manager: Manager, script: Path) -> Log:
    """Events through a master while its addon tree changes between them."""
    log: Log = []
    with logged_errors(log):
        async with master_with(manager) as master:
            parent = HearsLogs("parent", log,
                               [Node("a", log), Raises("raises", log), Node("b", log)])
            rebuilds = Rebuilds("rebuilds", log, [Node("rebuilds-first", log)])
            master.addons.add(Node("first", log), parent, Odd(log), Awaits("async", log),
                              rebuilds, Halts("halts", log), Node("after-halt", log))
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

            log.append("== children rebuilt in running")
            await master.addons.trigger_event(hooks.RunningHook())
            await _fire(master, log, flow)

            log.append("== a script loaded, then reloaded, then unloaded")
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


def _part(log: Log, title: str) -> Log:
    """The log from ``title`` to the next title of its kind (``== `` a step, ``-- `` an event)."""
    start = log.index(title)
    ends = [i for i, line in enumerate(log) if line.startswith(title[:3]) and i > start]
    return log[start:ends[0] if ends else len(log)]


async def test_plans_call_what_the_stock_walk_calls(tmp_path: Path) -> None:
    stock = await scenario(None, tmp_path / "stock.py")
    planned = await scenario(PlannedAddons, tmp_path / "planned.py")
    assert planned == stock
    # The scenario reaches what it claims to: errors, halts, changes and reloads.
    assert "b.request" not in stock and "after-halt.response" not in stock
    assert "async.request(async)" in stock and "async.update(async)" in stock
    synchronous = _part(stock, "-- update, synchronous (as flow commands send it)")
    assert "parent.update" in synchronous and "async.update(async)" not in synchronous
    assert "after-halt.update" not in synchronous
    assert any(line.startswith("parent.add_log(") for line in stock)
    for seen in ("late.request", "grown.requestheaders", "rebuilds-rebuilt.request",
                 "v1.request", "v2.request"):
        assert seen in stock
    assert "rebuilds-first.request" not in _part(stock, "== children rebuilt in running")
    errors = {line for line in stock if line.startswith("logged: ")}
    assert errors == {
        "logged: Addon error: boom",
        "logged: Addon error: Addon handler error (<tests.addons.test_hookplan.Odd object>) "
        "not callable",
        "logged: Addon error: Async handler update (<tests.addons.test_hookplan.Awaits object>) "
        "cannot be called from sync context",
    }
    assert "odd-child.error" not in stock
    tail = stock[stock.index("== a script loaded, then reloaded, then unloaded"):]
    assert tail.count("v1.request") == 1 and tail.count("v2.request") == 1


async def unreadable(manager: Manager) -> Log:
    log: Log = []
    with logged_errors(log):
        async with master_with(manager, log_events=False) as master:
            tree = Unreadable()
            master.addons.add(Node("before", log), tree, Node("after", log))
            tree.broken = True
            for _ in range(2):
                await master.addons.handle_lifecycle(http_layer.HttpRequestHook(tflow.tflow()))
                master.addons.trigger(hooks.UpdateHook([]))
    return log


async def test_a_tree_that_raises_when_read_is_logged_on_every_event() -> None:
    stock = await unreadable(None)
    assert await unreadable(PlannedAddons) == stock
    assert stock.count("logged: Addon error: children unreadable") == 6
    assert stock.count("after.request") == 2 and stock.count("after.update") == 4


# --- an event under way while the tree changes ---------------------------------------------


class Waits:
    """Holds ``request`` (async) while the test changes the tree."""

    name = "waits"

    def __init__(self, log: Log) -> None:
        self.log, self.held, self.go, self.armed = log, asyncio.Event(), asyncio.Event(), False

    async def request(self, flow: Any) -> None:
        self.log.append("waits.request")
        if self.armed:
            self.held.set()
            await self.go.wait()


class Unloads:
    """Unloads every script in the middle of ``request`` (synchronously, an option set)."""

    name = "unloads"
    armed = False

    def request(self, flow: Any) -> None:
        if self.armed:
            ctx.options.update(scripts=[])


HOLDING = """
import builtins
async def request(flow):
    flow.metadata.setdefault("log", []).append("{version}.request")
    hold = getattr(builtins, "HOLD", None)
    if hold is not None:
        hold[0].set()
        await hold[1].wait()
"""


async def _script(master: Master, path: Path, text: str) -> Any:
    """``text`` loaded as a script by mitmproxy's script loader, after those it has."""
    path.write_text(text)
    master.options.update(scripts=[*master.options.scripts, str(path)])
    loaded = master.addons.get(f"scriptmanager:{path}")
    for _ in range(200):
        if loaded.ns is not None:
            return loaded
        await asyncio.sleep(0.01)
    raise AssertionError(f"{path} did not load")


async def while_under_way(manager: Manager, case: str, tmp_path: Path) -> Log:
    """One ``request`` event, planned beforehand, during which the tree changes."""
    log: Log = []
    tmp_path.mkdir(parents=True, exist_ok=True)
    async with master_with(manager, defaults=False) as master:
        waits, unloads = Waits(log), Unloads()
        child = Node("child", log)
        parent = Node("parent", log, [child])
        # the default addons (the script loader among them) after the ones that act mid-event
        master.addons.add(unloads, waits, *default_addons(), parent)
        script = await _script(master, tmp_path / "script.py", SCRIPT.format(version="v1")) \
            if case.startswith("script") else None
        if case.startswith("waiting script"):  # three scripts, the first one holding
            holding = await _script(master, tmp_path / "holding.py",
                                    HOLDING.format(version="holding-v1"))
            for name in ("b", "c"):
                await _script(master, tmp_path / f"{name}.py", SCRIPT.format(version=name))
        flow = tflow.tflow()
        await master.addons.trigger_event(http_layer.HttpRequestHook(flow))  # planned now
        log.extend(flow.metadata.pop("log", []))
        log.append("-- under way")
        if case == "script unloaded by a handler":
            unloads.armed = True
            await master.addons.trigger_event(http_layer.HttpRequestHook(flow))
        elif case == "waiting script reloaded, scripts after it":
            import builtins
            held, go = asyncio.Event(), asyncio.Event()
            builtins.HOLD = (held, go)  # type: ignore[attr-defined]
            try:
                event = asyncio.ensure_future(
                    master.addons.trigger_event(http_layer.HttpRequestHook(flow)))
                await held.wait()
                (tmp_path / "holding.py").write_text(HOLDING.format(version="holding-v2"))
                holding.loadscript()
                go.set()
                await event
            finally:
                del builtins.HOLD  # type: ignore[attr-defined]
        else:
            waits.armed = True
            event = asyncio.ensure_future(
                master.addons.trigger_event(http_layer.HttpRequestHook(flow)))
            await waits.held.wait()
            if case == "child swapped":  # as a script reload swaps its module
                master.addons.remove(child)
                parent.addons.remove(child)
                swapped = Node("swapped", log)
                master.addons.register(swapped)
                parent.addons.append(swapped)
            elif case == "top-level addon added":
                master.addons.add(Node("late", log))
            elif case == "top-level addon removed":
                master.addons.remove(parent)
            elif case == "script reloaded":
                assert script is not None
                (tmp_path / "script.py").write_text(SCRIPT.format(version="v2"))
                script.loadscript()
            waits.go.set()
            await event
        log.extend(flow.metadata.pop("log", []))
    return log


CASES = ["child swapped", "top-level addon added", "top-level addon removed",
         "script reloaded", "script unloaded by a handler",
         "waiting script reloaded, scripts after it"]


@pytest.mark.parametrize("case", CASES)
async def test_an_event_under_way_follows_the_tree_as_it_changes(tmp_path: Path,
                                                                 case: str) -> None:
    stock = await while_under_way(None, case, tmp_path / "stock")
    planned = await while_under_way(PlannedAddons, case, tmp_path / "planned")
    assert planned == stock
    under_way = _part(stock, "-- under way")
    expected = {"child swapped": "swapped.request", "top-level addon added": "late.request",
                "top-level addon removed": "child.request", "script reloaded": "v2.request",
                "script unloaded by a handler": None,
                "waiting script reloaded, scripts after it": "c.request"}[case]
    if expected:
        assert expected in under_way
    if case.startswith("script"):
        assert "v1.request" not in under_way
    if case.startswith("waiting script"):  # the old module finished, the scripts after it ran
        assert under_way[-3:] == ["holding-v1.request", "b.request", "c.request"]


# --- a configure that reorders scripts without registering anything ------------------------

ORDERED = """
import builtins
def update(flows):
    builtins.ORDER.append("{name}")
"""


async def reordered(manager: Manager, tmp_path: Path) -> Log:
    """One options change: client replay (whose configure triggers ``update``, planning it),
    the scripts reordered by the script loader (no register or remove), then server replay
    (whose configure triggers ``update`` again, which must see the new order)."""
    import builtins
    order: Log = []
    builtins.ORDER = order  # type: ignore[attr-defined]
    tmp_path.mkdir()
    flows = tmp_path / "flows"
    with open(flows, "wb") as out:
        io.FlowWriter(out).add(tflow.tflow(resp=True))
    try:
        async with master_with(manager) as master:
            paths = []
            for name in ("a", "b"):
                paths.append(tmp_path / f"{name}.py")
                await _script(master, paths[-1], ORDERED.format(name=name))
            order.append("-- one options change")
            master.options.update(client_replay=[str(flows)], server_replay=[str(flows)],
                                  scripts=[str(paths[1]), str(paths[0])])
            master.addons.get("clientplayback").stop_replay()
    finally:
        del builtins.ORDER  # type: ignore[attr-defined]
    return order


async def test_a_configure_that_reorders_scripts_is_followed(tmp_path: Path) -> None:
    stock = await reordered(None, tmp_path / "stock")
    planned = await reordered(PlannedAddons, tmp_path / "planned")
    assert planned == stock
    assert "b" in stock and stock[-2:] == ["b", "a"]  # the last update saw the new order


# --- broken managers fail these checks --------------------------------------------------------


class KeptAcrossRegistration(PlannedAddons):
    """Broken: plans kept when an addon is registered or removed."""

    def register(self, addon: Any) -> Any:
        return AddonManager.register(self, addon)

    def remove(self, addon: Any) -> None:
        AddonManager.remove(self, addon)


class KeptAcrossLifecycle(PlannedAddons):
    """Broken: plans kept across lifecycle events (where children are rebuilt)."""

    def trigger(self, event: Any) -> None:
        if event.name in LIFECYCLE:
            return AddonManager.trigger(self, event)
        return super().trigger(event)

    def trigger_event(self, event: Any) -> Awaitable[None]:
        if event.name in LIFECYCLE:
            return AddonManager.trigger_event(self, event)
        return super().trigger_event(event)


class NeverDropped(KeptAcrossRegistration, KeptAcrossLifecycle):
    """Broken: plans kept across both."""


class SnapshotOnly(PlannedAddons):
    """Broken: an event under way keeps the plan it started with."""

    @contextlib.contextmanager
    def _tree_may_change(self) -> Iterator[None]:
        self._plans.clear()
        self._changing += 1
        try:
            yield
        finally:
            self._changing -= 1
            self._plans.clear()


class RestOfTreeDropped(PlannedAddons):
    """Broken: an event under way that sees the tree change skips the rest of the current
    addon's tree."""

    async def trigger_event(self, event: Any) -> None:
        with mock.patch("exportjobs.addons.hookplan._hooks_after", lambda *_: iter(())):
            await super().trigger_event(event)


class PlansWhileChanging(PlannedAddons):
    """Broken: plans made and used while the tree is changing."""

    @contextlib.contextmanager
    def _tree_may_change(self) -> Iterator[None]:
        self._plans.clear()
        self._generation += 1
        try:
            yield
        finally:
            self._generation += 1
            self._plans.clear()


def _differs_between(part: str, missed: str) -> Callable[[Manager, Path], Awaitable[bool]]:
    async def check(broken: Manager, tmp_path: Path) -> bool:
        stock = await scenario(None, tmp_path / "stock.py")
        stale = await scenario(broken, tmp_path / "stale.py")
        return stale != stock and (missed in _part(stale, part)) != (missed in _part(stock, part))
    return check


def _differs_under_way(case: str) -> Callable[[Manager, Path], Awaitable[bool]]:
    async def check(broken: Manager, tmp_path: Path) -> bool:
        stock = await while_under_way(None, case, tmp_path / "stock")
        return await while_under_way(broken, case, tmp_path / "broken") != stock
    return check


async def _differs_reordered(broken: Manager, tmp_path: Path) -> bool:
    return await reordered(broken, tmp_path / "broken") != await reordered(None, tmp_path / "stock")


@pytest.mark.parametrize(("broken", "check"), [
    (KeptAcrossRegistration, _differs_between("== one removed", "first.requestheaders")),
    (KeptAcrossLifecycle, _differs_between(
        "== a child added, then an option set (a configure event)", "grown.requestheaders")),
    (KeptAcrossLifecycle, _differs_between("== children rebuilt in running",
                                           "rebuilds-rebuilt.request")),
    (NeverDropped, _differs_between("== a script loaded, then reloaded, then unloaded",
                                    "v2.request")),
    (SnapshotOnly, _differs_under_way("script reloaded")),
    (SnapshotOnly, _differs_under_way("top-level addon added")),
    (SnapshotOnly, _differs_under_way("script unloaded by a handler")),
    (RestOfTreeDropped, _differs_under_way("waiting script reloaded, scripts after it")),
    (PlansWhileChanging, _differs_reordered),
], ids=["removed addon still called", "new child not called", "rebuilt children not called",
        "reloaded script not called", "old script called mid-event", "added addon missed "
        "mid-event", "unloaded script called mid-event", "later scripts missed mid-event",
        "stale order inside a configure"])
async def test_a_broken_manager_fails_the_comparison(tmp_path: Path, broken: Manager,
                                                     check: Any) -> None:
    assert await check(broken, tmp_path)


# --- errors that leave the event, and the proxy that uses it --------------------------------


class RefusesOption(Node):
    def request(self, flow: Any) -> None:
        self.log.append(f"{self.name}.request")
        raise exceptions.OptionsError("refused")


@pytest.mark.parametrize("manager", [None, PlannedAddons], ids=["stock", "planned"])
async def test_an_options_error_leaves_the_event_as_stock(manager: Manager) -> None:
    log: Log = []
    async with master_with(manager, defaults=False) as master:
        master.addons.add(Node("before", log), RefusesOption("refuses", log), Node("after", log))
        for _ in range(2):
            with pytest.raises(exceptions.OptionsError):
                await master.addons.trigger_event(http_layer.HttpRequestHook(tflow.tflow()))
            with pytest.raises(exceptions.OptionsError):
                master.addons.trigger(http_layer.HttpRequestHook(tflow.tflow()))
    assert log == ["before.request", "refuses.request"] * 4


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


def _listeners(master: Master) -> list[str]:
    return [getattr(ref(), "__qualname__", repr(ref())) for ref in master.options.changed.receivers]


async def test_plan_hooks_keeps_the_addons_and_the_listeners_order() -> None:
    from mitmproxy.tools.web.master import WebMaster

    master = WebMaster(options.Options(), with_termlog=False)
    try:
        before, listeners = list(master.addons.chain), _listeners(master)
        place = listeners.index("AddonManager._configure_all")
        assert place < len(listeners) - 1  # the web UI's listeners come after it
        planned = plan_hooks(master)
        assert isinstance(planned, PlannedAddons)
        assert master.addons is planned and planned.chain == before
        assert _listeners(master) == listeners
        assert master.options.changed.receivers[place]().__self__ is planned
        seen: list[set[str]] = []
        configure: Callable[[set[str]], None] = seen.append
        planned.add(types.SimpleNamespace(name="watcher", configure=configure))
        seen.clear()
        master.options.update(anticache=True)
        assert seen == [{"anticache"}]  # once: the stock manager no longer listens
    finally:
        master._legacy_log_events.uninstall()


async def test_an_unfamiliar_manager_is_kept() -> None:
    class Other(AddonManager):
        pass

    master = Master(options.Options())
    try:
        master.addons = Other(master)
        assert plan_hooks(master) is master.addons and type(master.addons) is Other
    finally:
        master._legacy_log_events.uninstall()
