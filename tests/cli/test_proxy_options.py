"""Everyday proxy options: ``--listen-host``, ``--set NAME=VALUE`` and ``exportjobs ca``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from exportjobs.addons.proxy import ProxyError, start_proxy
from exportjobs.cli import main
from exportjobs.cli.proxy import listen_warning
from tests.support.proxy import ONE_LIST_CASSETTE as CASSETTE

ROOT = Path(__file__).resolve().parent.parent.parent


# --- --set ---------------------------------------------------------------------------------


@pytest.mark.parametrize("spec, says", [
    ("no_such_option=1", "--set no_such_option: no such option"),
    ("upstream_cert=maybe", "--set upstream_cert: Boolean must be"),
    ("body_size_limit=lots", "--set body_size_limit: "),  # refused by mitmproxy's addon
    ("stream_large_bodies=1m", "--set stream_large_bodies: "),  # refused by our addon
    ("listen_port=9", "--set listen_port: this command sets it; use --port"),
    ("exportjobs_gate=2", "--set exportjobs_gate: this command sets it; use --gate"),
    ("web_host=0.0.0.0", "--set web_host: this command sets it; the web UI serves 127.0.0.1 only"),
])
def test_a_bad_set_exits_2_naming_the_option(tmp_path, capsys, monkeypatch, mitm_confdir,
                                             spec, says):
    async def stop_at_once() -> None:  # a value wrongly accepted: the proxy stops, exit 0
        return None

    monkeypatch.setattr("exportjobs.cli.proxy.until_signalled", stop_at_once)
    cassette = tmp_path / "c.yaml"
    cassette.write_text(CASSETTE)
    code = main(["proxy", "--mode", "replay", "--cassette", str(cassette), "--port", "0",
                 "--confdir", str(mitm_confdir), "--set", "ssl_insecure=true", "--set", spec])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    # mitmproxy 11 says "Boolean must be", 12 "Failed to parse option upstream_cert: boolean
    # must be": the option is named once, first.
    assert err.casefold().startswith(("exportjobs proxy: " + says).casefold()), err
    assert "Failed to parse option" not in err, err


async def test_set_values_reach_mitmproxy_parsed_as_mitmdump_parses_them(tmp_path, mitm_confdir):
    cassette = tmp_path / "c.yaml"
    cassette.write_text(CASSETTE)
    proxy = await start_proxy({"confdir": mitm_confdir, "exportjobs_mode": "replay",
                               "exportjobs_cassette": cassette},
                              specs=["ssl_insecure=true", "body_size_limit=5m",
                                     "allow_hosts=a.example", "allow_hosts=b.example"])
    try:
        opts = proxy.master.options
        assert opts.ssl_insecure is True
        assert opts.body_size_limit == "5m"
        assert list(opts.allow_hosts) == ["a.example", "b.example"]  # a list takes each spec
    finally:
        await proxy.close()


async def test_set_refused_by_an_addon_names_the_option(mitm_confdir):
    with pytest.raises(ProxyError) as caught:
        await start_proxy({"confdir": mitm_confdir, "exportjobs_mode": "passthrough"},
                          specs=["exportjobs_gate=1"])
    assert caught.value.option == "exportjobs_gate" and "2 or more" in caught.value.problem


# --- --listen-host -------------------------------------------------------------------------


@pytest.mark.parametrize("host, exposed", [
    ("127.0.0.1", False), ("127.0.0.2", False), ("localhost", False), ("::1", False),
    ("0.0.0.0", True), ("", True), ("::", True), ("192.168.1.20", True), ("myhost.lan", True),
])
def test_a_non_loopback_listen_host_is_warned_about(host, exposed):
    warning = listen_warning(host)
    assert (warning is not None) == exposed
    if warning:
        assert "anyone" in warning and "--listen-host 127.0.0.1" in warning


def test_the_proxy_listens_on_the_host_given(tmp_path, mitm_confdir):
    """Another loopback address than the default: the banner names it, traffic through it is
    served, and nothing listens on 127.0.0.1 for it."""
    cassette = tmp_path / "c.yaml"
    cassette.write_text(CASSETTE)
    host = "127.0.0.2"
    with socket.socket() as s:
        s.bind((host, 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "exportjobs", "proxy", "--mode", "replay", "--cassette",
         str(cassette), "--port", str(port), "--listen-host", host, "--confdir", str(mitm_confdir)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        banner = process.stdout.readline()
        assert f"http://{host}:{port}" in banner, banner
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({"http": f"http://{host}:{port}"}))
        url = "http://graph.microsoft.com/beta/employeeexperience/goals/exportjobs"
        with opener.open(url, timeout=10) as response:
            assert response.status == 200 and response.read() == b'{"value":[]}'
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(15) == 0
        err = process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert "warning" not in err and "Traceback" not in err


# --- exportjobs ca -------------------------------------------------------------------------


async def test_ca_prints_the_certificate_the_proxy_uses_and_how_to_trust_it(tmp_path, capsys):
    confdir = tmp_path / "conf"
    assert main(["ca", "--confdir", str(confdir)]) == 0
    out = capsys.readouterr().out
    cert = confdir / "mitmproxy-ca-cert.pem"
    assert out.splitlines()[0] == f"{cert}  (generated now)"
    pem = cert.read_bytes()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    for hint in ("REQUESTS_CA_BUNDLE=", "SSL_CERT_FILE=", "verify=", "NODE_EXTRA_CA_CERTS=",
                 "--cacert", "CURL_CA_BUNDLE=", "HttpClientHandler", "update-ca-certificates",
                 "keytool -importcert"):
        assert f"{hint}" in out, hint
    assert out.count(str(cert)) >= 8  # each client is told the path itself

    assert main(["ca", "--confdir", str(confdir), "--path"]) == 0
    assert capsys.readouterr().out == f"{cert}\n"  # for scripts; the CA is not made again
    assert cert.read_bytes() == pem

    proxy = await start_proxy({"confdir": confdir, "exportjobs_mode": "passthrough"})
    try:
        assert proxy.ca_cert == cert
    finally:
        await proxy.close()
    assert cert.read_bytes() == pem  # the proxy took that CA, it did not make its own


def test_ca_in_a_folder_that_cannot_be_made_exits_2(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["ca", "--confdir", str(blocker / "conf")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--confdir" in err and "Traceback" not in err
