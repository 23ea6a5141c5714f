"""Runs people can read: the failing exchange shown (secrets never), -v, TLS trust failures,
Ctrl-C, a progress line that fits, every problem at once, per-request values, Retry-After."""

from __future__ import annotations

import asyncio
import datetime
import email.utils
import io
import ipaddress
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from exportjobs.simulator.emulator.auth import fake_token
from exportjobs.simulator.progress import Progress
from exportjobs.simulator.runner import run_scenario
from exportjobs.simulator.scenario import ScenarioError, parse_scenario

EXPORTJOBS = [sys.executable, "-m", "exportjobs"]
JOBS = "/beta/employeeExperience/goals/exportJobs"


def run(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*EXPORTJOBS, "run", "--no-progress", *args], capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def served():
    proc = subprocess.Popen([*EXPORTJOBS, "serve", "--port", "0", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = re.search(r"http://127\.0\.0\.1:\d+", proc.stdout.readline())[0]
    yield url
    proc.terminate()
    proc.communicate(timeout=10)


# --- the failing exchange ---------------------------------------------------------------------


def test_a_broken_check_shows_the_exchange_and_never_the_token(served, tmp_path):
    canary = fake_token(canary="CANARY-5ecret-token")
    scenario = tmp_path / "bad.yaml"
    scenario.write_text(
        "name: bad\nauth: {token_env: GRAPH_TOKEN}\nsteps:\n"
        f"  - name: create without a view\n    request: {{method: POST, path: {JOBS}, "
        "headers: {Cookie: 'session=CANARY-cookie'}, json: {goalsOrganizationId: not-a-guid}}\n"
        "    expect: {status: 201}\n")
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = run(str(scenario), "--target", served, "--report-json", str(report), "--junit", str(junit),
               env={**os.environ, "GRAPH_TOKEN": canary})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    exchange = json.loads(report.read_text())["steps"][0]["exchanges"][0]
    assert exchange["method"] == "POST" and exchange["url"] == served + JOBS
    assert exchange["status"] == 400 and exchange["request_headers"]["Authorization"] == "REDACTED"
    assert exchange["request_headers"]["Cookie"] == "REDACTED"
    assert "not-a-guid" in exchange["request_body"]
    message = json.loads(exchange["response_body"])["error"]["message"]  # Graph's explanation
    assert message and message in proc.stdout and message in junit.read_text()
    assert "POST " + served + JOBS in proc.stdout and "HTTP 400" in proc.stdout
    for text in (proc.stdout, proc.stderr, report.read_text(), junit.read_text()):
        assert "CANARY" not in text


def test_verbose_prints_every_exchange_as_it_happens(served, tmp_path):
    scenario = tmp_path / "v.yaml"
    scenario.write_text(f"name: v\nsteps:\n  - request: {{path: {JOBS}}}\n    expect: {{status: 200}}\n"
                        f"  - burst: {{count: 3, request: {{path: {JOBS}}}}}\n")
    proc = run(str(scenario), "--target", served, "-v")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(f"GET {served}{JOBS}") == 4
    assert proc.stdout.count("HTTP 200") == 4 and "(copy 3)" in proc.stdout
    assert "Authorization: REDACTED" in proc.stdout and "eyJ" not in proc.stdout


# --- TLS trust ------------------------------------------------------------------------------------


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "exportjobs test CA")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def _serve_in_thread(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> Iterator[str]:
    """``app`` on 127.0.0.1 in a thread of its own (the runner runs in a child process)."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_context)
    loop.run_until_complete(site.start())
    port = site._server.sockets[0].getsockname()[1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(runner.cleanup())
        loop.close()


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    cert, key = _self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/ok", ok)
    for url in _serve_in_thread(app, context):
        yield url, cert


@pytest.mark.parametrize("step", ["request: {path: /ok}", "burst: {count: 4, release: barrier, request: {path: /ok}}",
                                  "burst: {count: 3, spacing: 0.01, request: {path: /ok}}"])
def test_an_untrusted_certificate_names_the_ca_to_pass_and_exits_3(tls_server, tmp_path, step):
    url, cert = tls_server
    scenario = tmp_path / "tls.yaml"
    scenario.write_text(f"name: tls\nsteps:\n  - {step}\n  - request: {{path: /ok}}\n")
    report = tmp_path / "r.json"
    proc = run(str(scenario), "--target", url, "--report-json", str(report))
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "TLS certificate is not trusted" in proc.stderr and "--cacert FILE" in proc.stderr
    assert "~/.mitmproxy/mitmproxy-ca-cert.pem" in proc.stderr and "Traceback" not in proc.stderr
    data = json.loads(report.read_text())
    assert data["untrusted"] is True and "not trusted" in data["steps"][1]["skipped"]
    trusted = run(str(scenario), "--target", url, "--cacert", str(cert))
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr


# --- the progress line ----------------------------------------------------------------------------


def test_the_progress_line_fits_the_terminal_and_never_wraps(monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    stream = io.StringIO()
    with Progress(enabled=True, stream=stream).task("load a phase with a long name") as bar:
        bar.update("12.0/60 s  123,456 requests  10,288/s  p95 12.3 ms and more words", fraction=0.2)
        bar._last = 0.0
        bar.update("x" * 200, fraction=0.5)
    drawn = [line for line in stream.getvalue().split("\r\x1b[2K") if line]
    assert len(drawn) == 2 and all(len(line) <= 59 for line in drawn), drawn
    assert "\n" not in stream.getvalue()


# --- Ctrl-C -------------------------------------------------------------------------------------


@pytest.mark.parametrize("long_step", ["pause: 60", "load: {concurrency: 2, duration: 60, mix: "
                                       f"[{{request: {{path: {JOBS}}}}}]}}"])
def test_ctrl_c_summarises_what_ran_writes_the_reports_and_exits_130(tmp_path, long_step):
    scenario = tmp_path / "long.yaml"
    scenario.write_text(f"name: long\nsteps:\n  - name: first\n    request: {{path: {JOBS}}}\n"
                        f"  - name: long one\n    {long_step}\n  - name: never\n    request: {{path: {JOBS}}}\n")
    report, junit = tmp_path / "r.json", tmp_path / "r.xml"
    proc = subprocess.Popen([*EXPORTJOBS, "run", "--no-progress", "-v", str(scenario), "--report-json",
                             str(report), "--junit", str(junit)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # the first exchange is printed: the first step has run
        if line.startswith("HTTP 200"):
            break
    time.sleep(1.0)  # into the long step
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "INTERRUPTED" in out and "Traceback" not in err
    data = json.loads(report.read_text())
    assert data["interrupted"] is True and data["ok"] is False
    first, long, never = data["steps"]
    assert first["ok"] is True and long["interrupted"] is True and "interrupted" in never["skipped"]
    if long["kind"] == "load":
        assert long["statuses"].get("200", 0) > 0  # what it sent before Ctrl-C is counted
    suite = ET.parse(junit).getroot()
    assert suite.find("properties/property[@name='interrupted']").get("value") == "true"
    cases = suite.findall("testcase")
    assert "interrupted" in cases[1].find("failure").get("message")
    assert cases[2].find("skipped") is not None


# --- every problem at once; --var typos -----------------------------------------------------------


def test_reference_errors_come_with_schema_errors():
    text = ("name: x\nvariables: {view: v}\nsteps:\n  - request: {path: '/a/${vew}', bogus: 1}\n"
            "  - burst: {count: 2, relase: none, request: {path: '/b/${nosuch}'}}\n")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, "x.yaml")
    message = str(caught.value)
    assert "x.yaml:4: unknown key 'bogus'" in message and "x.yaml:5: unknown key 'relase'" in message
    assert "x.yaml:4: ${vew} is not defined before this step (did you mean ${view}?)" in message
    assert "x.yaml:5: ${nosuch} is not defined" in message


def test_an_unused_var_warns_naming_the_nearest_and_still_runs(served, tmp_path):
    scenario = tmp_path / "v.yaml"
    scenario.write_text(f"name: v\nvariables: {{view: abc}}\nsteps:\n  - request: {{path: '{JOBS}', "
                        "query: {v: '${view}'}}\n")
    proc = run(str(scenario), "--target", served, "--var", "vew=1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "warning: --var vew is not a variable" in proc.stderr and "did you mean view?" in proc.stderr
    assert "PASSED" in proc.stdout


# --- per-request values -----------------------------------------------------------------------------


def test_per_request_values_are_drawn_for_every_request():
    text = (
        "name: fresh\nvariables:\n"
        "  id: {generate: guid, per: request}\n  n: {generate: counter, start: 10, per: request}\n"
        "  colour: {generate: choice, from: [red, blue], per: request}\n  run_id: {generate: guid}\n"
        "steps:\n"
        f"  - request: {{path: {JOBS}, headers: {{client-request-id: '${{id}}', x-n: '${{n}}', "
        "x-run: '${run_id}', x-colour: '${colour}'}}\n"
        f"  - burst: {{count: 4, release: barrier, request: {{path: {JOBS}, headers: "
        "{client-request-id: '${id}', x-n: '${n}', x-run: '${run_id}'}}}\n"
        f"  - load: {{concurrency: 2, duration: 30, max_requests: 5, mix: [{{request: {{path: {JOBS}, "
        "headers: {client-request-id: '${id}', x-n: '${n}', x-run: '${run_id}'}}}]}\n")
    scenario = parse_scenario(text, "fresh.yaml")
    seen = []
    result = asyncio.run(run_scenario(scenario, on_exchange=seen.append))
    assert result.ok, [(s.step.name, s.checks) for s in result.steps]
    assert len(seen) == 10
    ids = [e.request_headers["client-request-id"] for e in seen]
    assert len(set(ids)) == 10
    assert sorted(int(e.request_headers["x-n"]) for e in seen) == list(range(10, 20))
    assert len({e.request_headers["x-run"] for e in seen}) == 1  # per run: one value
    assert seen[0].request_headers["x-colour"] in ("red", "blue")


@pytest.mark.parametrize("spec, says", [
    ("{generate: choice, per: request}", "generate: choice needs 'from'"),
    ("{generate: guid, from: [a]}", "'from' goes with generate: choice"),
    ("{generate: guid, per: often}", "use one of: run, request"),
])
def test_generated_variables_that_do_not_fit_are_refused(spec, says):
    with pytest.raises(ScenarioError, match=re.escape(says)):
        parse_scenario(f"name: x\nvariables: {{v: {spec}}}\nsteps:\n  - pause: 0\n", "x.yaml")


# --- Retry-After ------------------------------------------------------------------------------------


def test_retry_after_in_both_forms():
    from exportjobs.simulator.values import retry_after_seconds

    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Wed, 21 Oct 2015 07:30:00 GMT", date="Wed, 21 Oct 2015 07:28:00 GMT") == 120
    now = time.time()
    assert retry_after_seconds(email.utils.formatdate(now + 60, usegmt=True), now=now) == pytest.approx(60, abs=1)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", date="Wed, 21 Oct 2015 07:30:00 GMT") == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


@pytest.fixture
def throttling_by_date():
    """429 with Retry-After as an HTTP-date one second after the response's Date, then 200."""
    calls = []

    async def handler(request: web.Request) -> web.Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            now = int(time.time())
            return web.json_response({"error": {"code": "TooManyRequests"}}, status=429, headers={
                "Date": email.utils.formatdate(now, usegmt=True),
                "Retry-After": email.utils.formatdate(now + 1, usegmt=True)})
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/slow", handler)
    for url in _serve_in_thread(app):
        yield url, calls


@pytest.mark.parametrize("step", [
    "request: {path: /slow}\n    retry: {max_retries: 2, interval: 0.01}\n    expect: {status: 200, honours_retry_after: true}",
    "poll: {request: {path: /slow}, until: {status: 200}, interval: 0.01, timeout: 20}"])
def test_retry_after_as_an_http_date_is_honoured(throttling_by_date, step):
    url, calls = throttling_by_date
    scenario = parse_scenario(f"name: d\nsteps:\n  - {step}\n", "d.yaml")
    result = asyncio.run(run_scenario(scenario, target=url))
    assert result.ok, result.steps[0].checks
    assert result.steps[0].details["sends"][0]["retry_after"] == 1.0
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.99
