"""``exportjobs proxy``: the addons in a mitmproxy, with flags derived from their options;
``--set`` for any other mitmproxy option, ``--web`` for mitmproxy's web UI."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from exportjobs.cli.args import port, until_signalled

_PROXY_MAIN = "main"
_PROXY_GROUPS = {"faults": "faults and the race gate (docs/faults.md)"}
_PROXY_FLAGS: tuple[tuple[str, str | None, str | None, str], ...] = (
    # (option, flag, metavar, group)
    ("exportjobs_mode", None, None, _PROXY_MAIN),
    ("exportjobs_cassette", None, "FILE", _PROXY_MAIN),
    ("exportjobs_record_mode", None, "none|once|new_episodes|all", _PROXY_MAIN),
    ("listen_port", "--port", "PORT", _PROXY_MAIN),
    ("exportjobs_upstream", None, "URL", _PROXY_MAIN),
    ("exportjobs_miss_policy", None, None, _PROXY_MAIN),
    ("exportjobs_hosts", "--host", "HOST[:PORT]", _PROXY_MAIN),
    ("exportjobs_redact_headers", "--redact-header", "NAME", _PROXY_MAIN),
    ("exportjobs_redact_query", None, "NAME", _PROXY_MAIN),
    ("exportjobs_redact_json", None, "FIELD", _PROXY_MAIN),
    ("confdir", None, "DIR", _PROXY_MAIN),
    ("exportjobs_faults", None, "PLAN", "faults"),
    ("exportjobs_fault_seed", None, "N", "faults"),
    ("exportjobs_fault_client_header", None, "NAME", "faults"),
    ("exportjobs_gate", None, "N", "faults"),
    ("exportjobs_gate_timeout", None, "S", "faults"),
)
# The command makes the behaviour explicit: --mode or --record-mode must be given (the
# flag has no default here, whatever the option's default in a bare mitmdump).
_CHOSEN = frozenset({"exportjobs_mode"})
_PROXY_PORT = 8080
_WEB_PORT = 8081
_LOOPBACK = "127.0.0.1"


def add(sub: argparse._SubParsersAction) -> None:
    from exportjobs.addons.options import declared
    from exportjobs.addons.proxy import proxy_addons

    p = sub.add_parser("proxy", help="record, replay or pass through exportJobs traffic (mitmproxy)")
    groups: dict[str, argparse._ActionsContainer] = {_PROXY_MAIN: p}
    groups.update({key: p.add_argument_group(title) for key, title in _PROXY_GROUPS.items()})
    declarations = dict(declared(proxy_addons()).items())
    flags: dict[str, str] = {}
    for option, flag, metavar, group in _PROXY_FLAGS:
        flag = flag or "--" + option.removeprefix("exportjobs_").replace("_", "-")
        flags[option] = flag
        if option == "listen_port":
            p.add_argument(flag, dest=option, type=port, default=_PROXY_PORT, metavar=metavar,
                           help=f"port to listen on (default {_PROXY_PORT})")
        else:
            _option_flag(groups[group], declarations[option], flag, metavar, option in _CHOSEN)
    p.add_argument("--listen-host", dest="listen_host", default=_LOOPBACK, metavar="HOST",
                   help=f"address to listen on (default {_LOOPBACK}); another (0.0.0.0 for every "
                        "interface) lets a phone, a container or WSL reach the proxy, and so "
                        "anyone on that network")
    p.add_argument("--set", dest="specs", action="append", default=[], metavar="NAME=VALUE",
                   help="set any other mitmproxy option, parsed as mitmdump --set parses it "
                        "(e.g. --set ssl_insecure=true). Repeatable.")
    web = p.add_argument_group("web UI (docs/web-ui.md)")
    web.add_argument("--web", action="store_true",
                     help="serve mitmproxy's web UI on 127.0.0.1, each exportJobs flow marked "
                          "with what happened to it; its address is printed")
    web.add_argument("--web-port", dest="web_port", type=port, default=_WEB_PORT, metavar="PORT",
                     help=f"port of the web UI (default {_WEB_PORT}; 0 picks a free one)")
    flags.update(listen_host="--listen-host", web_port="--web-port")
    p.set_defaults(func=_proxy, proxy_flags=flags)



def listen_warning(host: str) -> str | None:
    """What listening on ``host`` exposes, when it is not loopback; None when it is."""
    from exportjobs.simulator.transport import is_loopback_host

    if is_loopback_host(host):
        return None
    return (f"listening on {host or 'every interface'}, not loopback: anyone who can reach "
            "this machine can send traffic through this proxy (and, recording, to your "
            "upstream); firewall the port, or use --listen-host 127.0.0.1")


def _option_flag(parser: argparse._ActionsContainer, declared: Any, flag: str,
                 metavar: str | None, chosen: bool) -> None:
    """The flag of one declared option, derived as mitmproxy's ``OptManager.make_parser``
    derives its own: the value's type from the option's, a repeatable flag for a list, its
    choices, and its help (with the default, which the command line shows)."""
    typespec, default = declared.typespec, declared.default
    text = declared.help.replace("%", "%%")
    if default not in (None, "", []) and not chosen:
        text += f" (default {default:g})" if isinstance(default, float) else f" (default {default})"
    kwargs: dict[str, Any] = {"dest": declared.name, "metavar": metavar, "help": text,
                              "choices": declared.choices, "default": None if chosen else default}
    for value_type in (str, int, float):
        if typespec in (value_type, value_type | None):
            kwargs["type"] = value_type
            break
    else:
        if typespec != Sequence[str]:  # pragma: no cover - a type with no flag spelling yet
            raise TypeError(f"{declared.name}: options of type {typespec} have no flag")
        kwargs.update(type=str, action="append", default=list(default), help=text + " Repeatable.")
    parser.add_argument(flag, **kwargs)


def _proxy(args: argparse.Namespace) -> int:
    return asyncio.run(_proxy_until_stopped(args))


async def _proxy_until_stopped(args: argparse.Namespace) -> int:
    from exportjobs.addons.proxy import ProxyError, quiet_mitmproxy_logs, start_proxy

    flags: dict[str, str] = args.proxy_flags
    if args.exportjobs_mode is None and args.exportjobs_record_mode is None:
        print("exportjobs proxy: say what to do: --mode record|replay|passthrough, or "
              "--record-mode none|once|new_episodes|all (with --cassette)", file=sys.stderr)
        return 2
    for spec in args.specs:
        name = spec.partition("=")[0]
        if name in flags or name == "web_host":
            use = f"use {flags[name]}" if name in flags else "the web UI serves 127.0.0.1 only"
            print(f"exportjobs proxy: --set {name}: this command sets it; {use}", file=sys.stderr)
            return 2
    settings = {option: getattr(args, option) for option in flags
                if option not in ("listen_port", "listen_host", "web_port")
                and not (option in _CHOSEN and getattr(args, option) is None)}
    quiet_mitmproxy_logs()
    try:
        proxy = await start_proxy(settings, port=args.listen_port, host=args.listen_host,
                                  specs=args.specs, web_port=args.web_port if args.web else None)
    except ProxyError as exc:
        flag = flags.get(exc.option or "") or (f"--set {exc.option}" if exc.option else None)
        message = f"{flag}: {exc.problem}" if flag else str(exc)
        print(f"exportjobs proxy: {message}", file=sys.stderr)
        return exc.exit_code
    warning = listen_warning(args.listen_host)
    if warning:
        print(f"exportjobs proxy: warning: {warning}", file=sys.stderr, flush=True)
    doing = args.exportjobs_mode or f"record mode {args.exportjobs_record_mode}"
    print(f"exportjobs proxy ({doing}) on {proxy.url}; HTTPS clients must trust "
          f"{proxy.ca_cert} (exportjobs ca says how); Ctrl-C stops it", flush=True)
    if proxy.web_url is not None:
        print(f"web UI: {proxy.web_url}", flush=True)
    await until_signalled()
    await proxy.close()
    return 0
