"""The HTML report of a run: one self-contained file (inline CSS and SVG, no script, no
external asset) that opens offline in any browser.

It is drawn from ``run_data`` alone, the very dictionary ``--report-json`` writes, so the
two reports cannot disagree, and whatever the JSON leaves out (tokens, cookies) the page
cannot show. Every piece of text from the data goes through ``html.escape``; numbers are
formatted from floats. The page holds: the run's summary, each step with its verdict and
broken checks (and any failing exchanges the data carries), a timeline of each burst and
charts over time of each load phase with its thresholds drawn as lines.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from html import escape
from pathlib import Path
from typing import Any

from exportjobs.simulator.report import run_data
from exportjobs.simulator.runner import RunResult

MAX_ROWS = 1000  # burst requests drawn (the runner keeps no more)
MAX_BODY_CHARS = 4000  # of a body shown in an exchange block

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;
color:#1d232b;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}h3{font-size:15px;margin:16px 0 6px}
.verdict{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:600;color:#fff}
.v-ok{background:#1e7b34}.v-fail{background:#b3261e}.v-skip{background:#77787a}
table{border-collapse:collapse;width:100%;margin:6px 0}
td,th{border-bottom:1px solid #e3e5e8;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f5f7;font-weight:600}
.step{border:1px solid #d8dbe0;border-radius:6px;padding:8px 14px;margin:14px 0}
.step.failed{border-color:#b3261e}.muted{color:#5f6670}
.broken{color:#b3261e}pre{background:#f6f7f9;border:1px solid #e3e5e8;padding:8px;overflow-x:auto;
white-space:pre-wrap;word-break:break-all;font-size:12px;margin:4px 0}
details.exchanges summary h3{display:inline}
.exchange{display:grid;grid-template-columns:1fr 1fr;gap:10px}
svg{display:block;margin:6px 0;font:11px system-ui,sans-serif;max-width:100%;height:auto}
.legend span{margin-right:14px;white-space:nowrap}.swatch{display:inline-block;width:10px;height:10px;
margin-right:4px;vertical-align:middle}
"""

_OTHER = "#8a8f98"  # no response


def status_colour(status: Any) -> str:
    """One colour per kind of answer: created, other success, conflict, throttled, other
    client errors, server errors, nothing."""
    if not isinstance(status, int):
        return _OTHER
    if status == 201:
        return "#1e7b34"
    if status < 300:
        return "#3a8fd6"
    if status == 409:
        return "#e08a00"
    if status == 429:
        return "#8d5bd1"
    if status < 500:
        return "#c0392b"
    return "#7a0f0f"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    return f"{float(value):.{digits}f}" if isinstance(value, (int, float)) else "-"


def render(data: dict[str, Any]) -> str:
    """The page for ``data`` (as ``run_data`` makes it)."""
    ok = bool(data.get("ok"))
    parts = [
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f"<title>{_e(data.get('scenario', 'run'))}: {'passed' if ok else 'failed'}</title>",
        f"<style>{_CSS}</style></head><body>",
        *_summary(data),
    ]
    for step in data.get("steps", []):
        parts += _step(step)
    parts.append("<p class=\"muted\">Written by exportjobs run from the same data as --report-json.</p>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_html(run: RunResult, path: str | Path) -> None:
    """Write the page for ``run`` to ``path``."""
    Path(path).write_text(render(run_data(run)), encoding="utf-8")


# --- summary and steps --------------------------------------------------------------------


def _verdict(ok: bool, skipped: bool = False) -> str:
    cls, word = ("v-skip", "SKIPPED") if skipped else (("v-ok", "PASSED") if ok else ("v-fail", "FAILED"))
    return f"<span class=\"verdict {cls}\">{word}</span>"


def _summary(data: dict[str, Any]) -> Iterator[str]:
    steps = data.get("steps", [])
    checks = [c for s in steps for c in s.get("checks", [])]
    held = sum(1 for c in checks if c.get("ok"))
    passed = sum(1 for s in steps if s.get("ok"))
    yield "<section id=\"summary\">"
    yield f"<h1>{_e(data.get('scenario', ''))} {_verdict(bool(data.get('ok')))}</h1>"
    yield f"<p class=\"muted\">{_e(data.get('source', ''))}</p>"
    rows = [("target", data.get("target")), ("proxy", data.get("proxy") or "none"),
            ("steps passed", f"{passed} of {len(steps)}"), ("checks held", f"{held} of {len(checks)}"),
            ("duration", f"{_num(data.get('duration_s'), 1)} s"),
            ("emulator arrival log", "read" if data.get("emulator_control") else "not available")]
    if data.get("interrupted"):
        rows.append(("interrupted", "yes: the run was stopped before its end"))
    if data.get("stopped"):
        rows.append(("stopped", data["stopped"]))
    for name, value in (data.get("variables") or {}).items():
        rows.append((f"variable {name}", value))
    yield "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"
    yield "<table><tr><th>#</th><th>step</th><th>kind</th><th>verdict</th><th>statuses</th></tr>"
    for s in steps:
        yield (f"<tr class=\"step-row\"><td>{_e(s.get('index'))}</td><td><a href=\"#step-{_e(s.get('index'))}\">"
               f"{_e(s.get('name'))}</a></td><td>{_e(s.get('kind'))}</td>"
               f"<td>{_verdict(bool(s.get('ok')), s.get('skipped') is not None)}</td>"
               f"<td>{_e(_statuses(s))}</td></tr>")
    yield "</table></section>"


def _statuses(step: dict[str, Any]) -> str:
    parts = [f"{k} x{v}" for k, v in (step.get("statuses") or {}).items()]
    if step.get("no_response"):
        parts.append(f"no response x{step['no_response']}")
    return ", ".join(parts) or "-"


def _step(step: dict[str, Any]) -> Iterator[str]:
    skipped = step.get("skipped") is not None
    failed = not step.get("ok") and not skipped
    details = step.get("details") or {}
    yield (f"<section class=\"step{' failed' if failed else ''}\" id=\"step-{_e(step.get('index'))}\" "
           f"data-kind=\"{_e(step.get('kind'))}\">")
    yield (f"<h2>{_e(step.get('index'))}. {_e(step.get('name'))} <span class=\"muted\">[{_e(step.get('kind'))}, "
           f"line {_e(step.get('line'))}]</span> {_verdict(bool(step.get('ok')), skipped)}</h2>")
    if skipped:
        yield f"<p>Skipped: {_e(step['skipped'])}</p></section>"
        return
    facts = [("statuses", _statuses(step)), ("duration", f"{_num(step.get('duration_s'))} s")]
    latency = step.get("latency_ms")
    if isinstance(latency, dict):
        facts.append(("latency", " / ".join(f"{k[:-3]} {_num(v, 1)} ms" for k, v in latency.items())))
    for key in ("request", "release", "send_spread_ms", "arrival_spread_ms", "tries", "waited_s",
                "requests", "rps", "error_rate", "no_response", "no_answer"):
        if key in details:
            facts.append((key.replace("_", " "), details[key]))
    yield "<table>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in facts) + "</table>"
    broken = [c for c in step.get("checks", []) if not c.get("ok")]
    if broken:
        yield "<h3 class=\"broken\">Broken checks</h3><ul class=\"checks\">"
        for c in broken:
            yield (f"<li class=\"broken-check\"><b>{_e(c.get('what'))}</b>: expected {_e(c.get('expected'))}, "
                   f"got {_e(c.get('actual'))}</li>")
        yield "</ul>"
    exchanges = list(_exchanges(step))
    if exchanges:
        # Open where a check broke (the exchange explains it); folded away where all held.
        yield (f"<details class=\"exchanges\"{' open' if broken else ''}><summary><h3>Exchanges "
               f"({len(exchanges)})</h3></summary>")
        for exchange in exchanges:
            yield _exchange(exchange)
        yield "</details>"
    if step.get("kind") == "burst" and isinstance(details.get("timeline"), dict):
        yield from _burst(details)
    if step.get("kind") == "load" and isinstance(details.get("series"), dict):
        yield from _load(details, step)
    yield "</section>"


# --- exchanges ----------------------------------------------------------------------------


def _exchanges(value: Any, depth: int = 0) -> Iterator[Any]:
    """Every value under an ``exchange`` or ``exchanges`` key, wherever the step holds one."""
    if depth > 6:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "exchange" and item:
                yield item
            elif key == "exchanges" and isinstance(item, list):
                yield from (x for x in item if x)
            else:
                yield from _exchanges(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _exchanges(item, depth + 1)


def _message(part: Any, first_line: str) -> str:
    """An HTTP message as text: a first line, the headers, a blank line and the body."""
    if not isinstance(part, dict):
        return _cut(json.dumps(part, indent=2, default=str) if not isinstance(part, str) else part)
    lines = [first_line] if first_line else []
    headers = part.get("headers")
    if isinstance(headers, dict):
        lines += [f"{k}: {v}" for k, v in headers.items()]
    elif isinstance(headers, list):
        lines += [": ".join(map(str, h)) if isinstance(h, (list, tuple)) else str(h) for h in headers]
    body = part.get("body")
    if body not in (None, ""):
        lines += ["", _readable(body)]
    rest = {k: v for k, v in part.items() if k not in ("headers", "body", "method", "url", "status", "reason")}
    if rest:
        lines += ["", json.dumps(rest, indent=2, default=str)]
    return _cut("\n".join(lines))


def _readable(body: Any) -> str:
    """A body to read: JSON indented (whole JSON text too), anything else as it is."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body
    return json.dumps(body, indent=2, ensure_ascii=False, default=str)


def _cut(text: str) -> str:
    return text if len(text) <= MAX_BODY_CHARS else text[:MAX_BODY_CHARS] + f"\n... ({len(text):,} characters)"


def _as_messages(exchange: dict[str, Any]) -> dict[str, Any]:
    """The runner's flat exchange record (``simulator.exchange.Exchange.as_data``) as a
    request and a response message; other shapes pass as they are."""
    if not {"method", "status"} <= exchange.keys():
        return exchange
    request = {"method": exchange.get("method"), "url": exchange.get("url"),
               "headers": exchange.get("request_headers"), "body": exchange.get("request_body")}
    status = exchange.get("status")
    response: dict[str, Any] = {"status": status, "headers": exchange.get("response_headers"),
                                "body": exchange.get("response_body")}
    if status is None:
        response["reason"] = f"({exchange.get('error')})"
    shown = {"latency_ms": exchange.get("latency_ms"), "copy": exchange.get("copy")}
    return {"request": request, "response": response,
            **{k: v for k, v in shown.items() if v is not None}}


def _exchange(exchange: Any) -> str:
    if isinstance(exchange, dict):
        exchange = _as_messages(exchange)
    if not isinstance(exchange, dict) or not ({"request", "response"} & exchange.keys()):
        return f"<pre class=\"exchange-raw\">{_e(_message(exchange, ''))}</pre>"
    request, response = exchange.get("request"), exchange.get("response")
    req_line = (f"{request.get('method', '')} {request.get('url', '')}".strip()
                if isinstance(request, dict) else "")
    if isinstance(response, dict):
        status = response.get("status")
        resp_line = f"{status if status is not None else 'no response'} {response.get('reason', '')}".strip()
    else:
        resp_line = ""
    others = {k: v for k, v in exchange.items() if k not in ("request", "response")}
    note = f"<p class=\"muted\">{_e(json.dumps(others, default=str))}</p>" if others else ""
    return (f"{note}<div class=\"exchange\"><div><b>request</b><pre class=\"exchange-request\">"
            f"{_e(_message(request, req_line))}</pre></div><div><b>response</b>"
            f"<pre class=\"exchange-response\">{_e(_message(response, resp_line))}</pre></div></div>")


# --- burst timeline -----------------------------------------------------------------------


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return "<p class=\"legend\">" + "".join(
        f"<span><i class=\"swatch\" style=\"background:{c}\"></i>{_e(t)}</span>" for t, c in items) + "</p>"


def _burst(details: dict[str, Any]) -> Iterator[str]:
    timeline = details["timeline"]
    rows = [r for r in timeline.get("rows", [])[:MAX_ROWS] if isinstance(r, dict)]
    arrivals = [a for a in timeline.get("arrivals", []) or [] if isinstance(a, dict)
                and isinstance(a.get("ms"), (int, float))][:MAX_ROWS]
    total = timeline.get("total", len(rows))
    won = timeline.get("winner")
    if not rows:
        return
    sends = [r["last_byte_ms"] for r in rows if isinstance(r.get("last_byte_ms"), (int, float))]
    firsts = [r["first_byte_ms"] for r in rows if isinstance(r.get("first_byte_ms"), (int, float))]
    answers = [r["response_ms"] for r in rows if isinstance(r.get("response_ms"), (int, float))]
    arrived = [r["arrival_ms"] for r in rows if isinstance(r.get("arrival_ms"), (int, float))]
    core = sends + [a["ms"] for a in arrivals] + arrived + answers
    if not core:
        return
    lo, hi = min(core), max(core)
    # First bytes written well ahead of the release (last-byte releases) would squeeze the
    # release into a sliver: they are clipped to the left edge and their times written there.
    clip = bool(firsts) and min(firsts) < lo - 0.25 * max(hi - lo, 0.001)
    if not clip and firsts:
        lo = min(lo, min(firsts))
    pad = max((hi - lo) * 0.03, 0.005)
    lo, hi = lo - pad, hi + pad
    left, width, row_h = 150, 1000, 12
    lane = 26 if arrivals else 0
    top = 34
    height = top + lane + row_h * len(rows) + 30

    def x(ms: float) -> float:
        return left + (ms - lo) / (hi - lo) * width

    out = [f"<h3>Timeline</h3><svg class=\"burst-timeline\" role=\"img\" width=\"{left + width + 20}\" "
           f"height=\"{height}\" viewBox=\"0 0 {left + width + 20} {height}\" xmlns=\"http://www.w3.org/2000/svg\">"]
    spread = (f"send spread {_num(details.get('send_spread_ms'))} ms"
              + (f", arrival spread {_num(details.get('arrival_spread_ms'))} ms"
                 if "arrival_spread_ms" in details else ", arrivals not available"))
    out.append(f"<text class=\"spread\" x=\"{left}\" y=\"14\" font-size=\"13\" font-weight=\"600\">"
               f"release {_e(details.get('release', ''))}: {_e(spread)}</text>")
    bottom = height - 22
    for tick in _ticks(lo, hi):
        tx = x(tick)
        out.append(f"<line x1=\"{tx:.1f}\" y1=\"{top - 6}\" x2=\"{tx:.1f}\" y2=\"{bottom}\" stroke=\"#e6e8eb\"/>"
                   f"<text x=\"{tx:.1f}\" y=\"{bottom + 14}\" text-anchor=\"middle\" fill=\"#5f6670\">"
                   f"{_e(_tick_label(tick))} ms</text>")
    zero = x(0.0)
    if lo <= 0 <= hi:
        out.append(f"<line class=\"release\" x1=\"{zero:.1f}\" y1=\"{top - 8}\" x2=\"{zero:.1f}\" y2=\"{bottom}\" "
                   f"stroke=\"#1d232b\" stroke-dasharray=\"3 2\"/><text x=\"{zero + 3:.1f}\" y=\"{top - 10}\" "
                   f"fill=\"#1d232b\">release</text>")
    if arrivals:
        ay = top + 4
        out.append(f"<text x=\"{left - 14}\" y=\"{ay + 10}\" text-anchor=\"end\">server arrivals</text>"
                   f"<g class=\"arrivals\">")
        for a in arrivals:
            ax = x(a["ms"])
            winner = " winner" if a.get("status") == 201 else ""
            out.append(f"<line class=\"arrival{winner}\" x1=\"{ax:.2f}\" y1=\"{ay}\" x2=\"{ax:.2f}\" "
                       f"y2=\"{ay + 14}\" stroke=\"{status_colour(a.get('status'))}\" "
                       f"stroke-width=\"{3 if winner else 1.5}\"><title>arrival {_num(a['ms'])} ms: "
                       f"{_e(a.get('status'))}</title></line>")
        out.append("</g>")
    for i, r in enumerate(rows):
        y = top + lane + i * row_h + row_h / 2
        status = r.get("status")
        colour = status_colour(status)
        is_winner = won == i
        label = f"#{i + 1} {status if status is not None else 'no response'}"
        cls = "request-row winner" if is_winner else "request-row"
        out.append(f"<g class=\"{cls}\" data-index=\"{i}\" data-status=\"{_e(status)}\">")
        if is_winner:
            out.append(f"<rect x=\"2\" y=\"{y - row_h / 2:.1f}\" width=\"{left + width + 16}\" height=\"{row_h}\" "
                       "fill=\"#fff3c4\"/>")
            label = "\u2605 winner " + label
        out.append(f"<text x=\"{left - 14}\" y=\"{y + 4:.1f}\" text-anchor=\"end\" fill=\"{colour}\">{_e(label)}</text>")
        first, last, answer = r.get("first_byte_ms"), r.get("last_byte_ms"), r.get("response_ms")
        if isinstance(last, (int, float)):
            start = first if isinstance(first, (int, float)) else last
            sx = max(left - 6.0, x(start)) if clip else x(start)
            end = x(answer) if isinstance(answer, (int, float)) else x(hi)
            dash = "" if isinstance(answer, (int, float)) else " stroke-dasharray=\"2 3\""
            out.append(f"<line x1=\"{sx:.2f}\" y1=\"{y:.1f}\" x2=\"{end:.2f}\" y2=\"{y:.1f}\" stroke=\"{colour}\" "
                       f"stroke-opacity=\"0.45\"{dash}/>")
            if isinstance(first, (int, float)):
                out.append(f"<circle class=\"first-byte\" cx=\"{sx:.2f}\" cy=\"{y:.1f}\" r=\"2.5\" fill=\"none\" "
                           f"stroke=\"{colour}\"><title>first byte {_num(first)} ms</title></circle>")
            out.append(f"<rect class=\"last-byte\" x=\"{x(last) - 1:.2f}\" y=\"{y - 4:.1f}\" width=\"2\" height=\"8\" "
                       f"fill=\"{colour}\"><title>last byte {_num(last)} ms</title></rect>")
        reached = r.get("arrival_ms")
        if isinstance(reached, (int, float)):
            rx = x(reached)
            out.append(f"<rect class=\"arrival-mark\" x=\"{rx - 3:.2f}\" y=\"{y - 3:.1f}\" width=\"6\" "
                       f"height=\"6\" fill=\"#ffffff\" stroke=\"{colour}\" stroke-width=\"1.5\"><title>reached "
                       f"the server {_num(reached)} ms</title></rect>")
        if isinstance(answer, (int, float)):
            ax = x(answer)
            out.append(f"<path class=\"response\" d=\"M{ax - 4:.2f} {y:.1f}L{ax:.2f} {y - 4:.1f}L{ax + 4:.2f} "
                       f"{y:.1f}L{ax:.2f} {y + 4:.1f}Z\" fill=\"{colour}\"><title>response {_e(status)} at "
                       f"{_num(answer)} ms</title></path>")
        out.append("</g>")
    out.append("</svg>")
    yield "".join(out)
    notes = []
    if clip:
        notes.append(f"first bytes were written {_num(-min(firsts), 1)} to {_num(-max(firsts), 1)} ms before the "
                     "release (all but the last byte, ahead of time): drawn at the left edge")
    if isinstance(total, int) and total > len(rows):
        notes.append(f"the first {len(rows):,} of {total:,} requests are drawn")
    if won is None:
        notes.append("no single 201 winner")
    legend = [("201 Created (the winner is starred)", status_colour(201)), ("other 2xx", status_colour(200)),
              ("409 Conflict", status_colour(409)), ("429", status_colour(429)), ("other 4xx", status_colour(400)),
              ("5xx", status_colour(500)), ("no response", _OTHER)]
    yield _legend(legend)
    yield ("<p class=\"muted\">Times in ms from the release (the first request's last byte). Per request: "
           "\u25cb first byte written, \u258e last byte written, "
           + ("\u25a1 reached the server (its last byte, as the emulator logged it, matched by the "
              "request's own client-request-id), " if arrived else "")
           + "\u25c6 response read"
           + (", and on top every arrival the server logged" if arrivals else "") + ". "
           + "; ".join(_e(n) for n in notes) + "</p>")


def _ticks(lo: float, hi: float, count: int = 8) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    step = 10 ** _floor_log10(raw)
    for m in (1, 2, 5, 10):
        if raw <= step * m:
            step *= m
            break
    first = (lo // step + 1) * step
    return [first + k * step for k in range(int((hi - first) / step) + 1)]


def _floor_log10(value: float) -> int:
    exponent = 0
    while value >= 10:
        value /= 10
        exponent += 1
    while value < 1:
        value *= 10
        exponent -= 1
    return exponent


def _tick_label(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") if abs(value) > 1e-9 else "0"


# --- load charts --------------------------------------------------------------------------


def _load(details: dict[str, Any], step: dict[str, Any]) -> Iterator[str]:
    series = details["series"]
    points = [p for p in series.get("points", []) if isinstance(p, dict)]
    width_s = float(series.get("interval_s") or 1.0)
    limits = details.get("thresholds") or {}
    if details.get("engine", "built-in") != "built-in":  # which engine ran the load, on how many workers
        yield f"<p class=\"muted\">Load on {_e(str(details['engine']).capitalize())}, {_e(str(details.get('workers')))} worker(s)</p>"
    if not points:
        return
    xs = [float(p.get("t_s", 0.0)) for p in points]
    lines = {key: [(x, p.get(key)) for x, p in zip(xs, points)] for key in ("p50_ms", "p95_ms", "p99_ms")}
    latency_limits = {k: v for k, v in limits.items() if k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")}
    yield f"<h3>Latency over time <span class=\"muted\">(per {width_s:g} s, by when the response came)</span></h3>"
    yield _line_chart("latency", lines, latency_limits, "ms", xs[-1] + width_s,
                      {"p50_ms": "#3a8fd6", "p95_ms": "#e08a00", "p99_ms": "#b3261e"})
    yield _legend([("p50", "#3a8fd6"), ("p95", "#e08a00"), ("p99", "#b3261e"), ("threshold", "#1d232b")])
    statuses = sorted({s for p in points for s in (p.get("statuses") or {})}, key=lambda s: (len(s), s))
    yield "<h3>Responses a second, by status</h3>"
    yield _bar_chart(points, statuses, width_s, limits.get("min_rps"), xs[-1] + width_s)
    yield _legend([(s, status_colour(int(s) if s.isdigit() else None)) for s in statuses]
                  + [("no response", _OTHER), ("min_rps threshold", "#1d232b")])
    if "error_rate" in limits:
        rates = [(x, (p.get("no_response", 0) + sum(n for s, n in (p.get("statuses") or {}).items()
                                                   if s.isdigit() and int(s) >= 500)) / p["requests"]
                  if p.get("requests") else None) for x, p in zip(xs, points)]
        yield "<h3>Error rate over time</h3>"
        yield _line_chart("error-rate", {"error_rate": rates}, {"error_rate": limits["error_rate"]}, "",
                          xs[-1] + width_s, {"error_rate": "#b3261e"}, floor_top=0.05)


def _frame(cls: str, end_s: float, top: float, unit: str, w: int = 1000, h: int = 220) -> tuple[list[str], Any, Any]:
    left, bottom = 60, h - 28

    def x(t: float) -> float:
        return left + t / end_s * w if end_s > 0 else left

    def y(v: float) -> float:
        return bottom - v / top * (bottom - 12) if top > 0 else bottom

    out = [f"<svg class=\"{cls}\" role=\"img\" width=\"{left + w + 70}\" height=\"{h}\" "
           f"viewBox=\"0 0 {left + w + 70} {h}\" xmlns=\"http://www.w3.org/2000/svg\">",
           f"<line x1=\"{left}\" y1=\"{bottom}\" x2=\"{left + w}\" y2=\"{bottom}\" stroke=\"#8a8f98\"/>"]
    for tick in _ticks(0, top, 5):
        out.append(f"<line x1=\"{left}\" y1=\"{y(tick):.1f}\" x2=\"{left + w}\" y2=\"{y(tick):.1f}\" "
                   f"stroke=\"#eef0f2\"/><text x=\"{left - 6}\" y=\"{y(tick) + 4:.1f}\" text-anchor=\"end\" "
                   f"fill=\"#5f6670\">{_e(_tick_label(tick))}{_e(unit)}</text>")
    for tick in _ticks(0, end_s, 10):
        out.append(f"<text x=\"{x(tick):.1f}\" y=\"{bottom + 16}\" text-anchor=\"middle\" fill=\"#5f6670\">"
                   f"{_e(_tick_label(tick))} s</text>")
    return out, x, y


def _threshold(name: str, value: float, x: Any, y: Any, end_s: float) -> str:
    return (f"<g class=\"threshold\" data-name=\"{_e(name)}\"><line x1=\"{x(0):.1f}\" y1=\"{y(value):.1f}\" "
            f"x2=\"{x(end_s):.1f}\" y2=\"{y(value):.1f}\" stroke=\"#1d232b\" stroke-width=\"1.5\" "
            f"stroke-dasharray=\"6 4\"/><text x=\"{x(end_s) + 4:.1f}\" y=\"{y(value) + 4:.1f}\">"
            f"{_e(name)} {_e(f'{value:g}')}</text></g>")


def _line_chart(cls: str, lines: dict[str, list[tuple[float, Any]]], limits: dict[str, Any], unit: str,
                end_s: float, colours: dict[str, str], floor_top: float = 1.0) -> str:
    values = [v for pts in lines.values() for _, v in pts if isinstance(v, (int, float))]
    values += [v for v in limits.values() if isinstance(v, (int, float))]
    top = max([floor_top, *values]) * 1.1
    out, x, y = _frame(f"chart {cls}", end_s, top, unit)
    for key, pts in lines.items():
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts if isinstance(v, (int, float)))
        if path:
            out.append(f"<polyline class=\"series\" data-name=\"{_e(key)}\" points=\"{path}\" fill=\"none\" "
                       f"stroke=\"{colours.get(key, '#1d232b')}\" stroke-width=\"1.6\"/>")
    for name, value in limits.items():
        if isinstance(value, (int, float)):
            out.append(_threshold(name, float(value), x, y, end_s))
    out.append("</svg>")
    return "".join(out)


def _bar_chart(points: list[dict[str, Any]], statuses: list[str], width_s: float, min_rps: Any,
               end_s: float) -> str:
    rates = [p.get("requests", 0) / width_s for p in points]
    top = max([1.0, *rates, *([float(min_rps)] if isinstance(min_rps, (int, float)) else [])]) * 1.1
    out, x, y = _frame("chart status-counts", end_s, top, "/s")
    for p in points:
        t = float(p.get("t_s", 0.0))
        bar_w = max(1.0, x(t + width_s) - x(t) - 1)
        base = 0.0
        parts = [(s, (p.get("statuses") or {}).get(s, 0)) for s in statuses] + [("none", p.get("no_response", 0))]
        for status, n in parts:
            if not n:
                continue
            rate = n / width_s
            colour = status_colour(int(status)) if status.isdigit() else _OTHER
            out.append(f"<rect x=\"{x(t):.1f}\" y=\"{y(base + rate):.1f}\" width=\"{bar_w:.1f}\" "
                       f"height=\"{y(base) - y(base + rate):.1f}\" fill=\"{colour}\"><title>{_e(status)}: "
                       f"{n} in {width_s:g} s from {t:g} s</title></rect>")
            base += rate
    if isinstance(min_rps, (int, float)):
        out.append(_threshold("min_rps", float(min_rps), x, y, end_s))
    out.append("</svg>")
    return "".join(out)
