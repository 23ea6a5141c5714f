"""``exportjobs har export|import``: files chosen, never overwritten unasked, bad HARs named.

Every bad input ends in one line on stderr naming the file and the entry and field, exit 2,
no traceback, and no cassette written.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from exportjobs.addons.cassette import load_cassette
from exportjobs.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "addons" / "fixtures"
CHROME = FIXTURES / "chrome-graph-explorer.har"
URL = "https://graph.microsoft.com/beta/employeeExperience/goals/exportJobs"


def har_of(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"log": {"version": "1.2", "creator": {"name": "test", "version": "1"},
                    "entries": list(entries)}}


def entry(method: str = "GET", url: str = URL, status: Any = 200, text: str = '{"value": []}',
          **content: Any) -> dict[str, Any]:
    return {"startedDateTime": "2026-11-28T10:00:00.000Z", "time": 12.5,
            "request": {"method": method, "url": url, "httpVersion": "HTTP/1.1", "headers": []},
            "response": {"status": status, "httpVersion": "HTTP/1.1",
                         "headers": [{"name": "Content-Type", "value": "application/json"}],
                         "content": {"mimeType": "application/json", "text": text, **content}}}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, har: Any) -> Path:
    path.write_text(har if isinstance(har, str) else json.dumps(har), encoding="utf-8")
    return path


# --- import ----------------------------------------------------------------------------------


def test_import_default_output_and_summary(tmp_path, capsys):
    har = shutil.copy(CHROME, tmp_path / "session.har")
    code, out, err = run(capsys, "har", "import", str(har))
    assert code == 0, err
    cassette = tmp_path / "session.yaml"
    assert len(load_cassette(cassette).interactions) == 7
    assert "imported 7 exportJobs interaction(s)" in out and "2 other entries left out" in out
    assert "--redact-query access_token" in out  # what replay needs to match that request


def test_import_refuses_to_overwrite_a_cassette_unless_forced(tmp_path, capsys):
    cassette = tmp_path / "keep.yaml"
    cassette.write_bytes(b"precious")
    code, _, err = run(capsys, "har", "import", str(CHROME), "-o", str(cassette))
    assert code == 2 and "already exists; pass --force" in err and str(cassette) in err
    assert cassette.read_bytes() == b"precious"
    code, _, err = run(capsys, "har", "import", str(CHROME), "-o", str(cassette), "--force")
    assert code == 0, err
    assert len(load_cassette(cassette).interactions) == 7


def test_a_failed_import_leaves_the_previous_cassette_and_no_temporary_file(tmp_path, capsys):
    cassette = tmp_path / "keep.yaml"
    cassette.write_bytes(b"precious")
    bad = write(tmp_path / "bad.har", har_of(entry(), entry(status=0)))
    code, _, err = run(capsys, "har", "import", str(bad), "-o", str(cassette), "--force")
    assert code == 2 and "entries[1].response.status" in err
    assert cassette.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.har", "keep.yaml"]


def test_disk_full_mid_import_leaves_no_cassette(tmp_path, capsys, monkeypatch):
    """The cassette appears whole or not at all: a write that fails after the header (the
    disk fills up half way through the interactions) leaves no file behind."""
    import errno
    import os

    from exportjobs.addons import persister

    calls = []

    def filling_up(fd: int, data: memoryview) -> int:
        calls.append(len(data))
        if len(calls) == 1:  # the header
            return os.write(fd, data)
        if len(calls) == 2:  # half of the interactions, then the disk is full
            return os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(persister, "_write_some", filling_up)
    cassette = tmp_path / "new.yaml"
    code, _, err = run(capsys, "har", "import", str(CHROME), "-o", str(cassette))
    assert len(calls) == 3
    assert code == 2 and "No space left on device" in err and str(cassette) in err
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(("har", "named"), [
    ("{not json", "line 1 column 2: is not JSON"),
    ('{"log": {"pages": []}}', "log.entries: is missing: this is JSON but not a HAR"),
    ("[1, 2]", "log.entries: is missing"),
    (har_of("entry"), "entries[0]: is missing or not an object"),
    (har_of({"request": {"method": "GET"}}), "entries[0].request.url: is missing or not text"),
    (har_of(entry(url="/beta/employeeExperience/goals/exportJobs")),
     "entries[0].request.url: is not an absolute http(s) URL"),
    (har_of(entry(method="G T")), "entries[0].request.method: is not an HTTP method"),
    (har_of(entry(url="https://example.com/x"), entry(status=0)),
     "entries[1].response.status: is 0: the request got no response"),
    (har_of({**entry(), "response": None}), "entries[0].response: is missing"),
    (har_of(entry(status="200")), "entries[0].response.status: is '200', not an HTTP status"),
    (har_of(entry(text="%%%not base64", encoding="base64")),
     "entries[0].response.content.text: is not valid base64"),
    (har_of(entry(text="x", encoding="gzip")),
     "entries[0].response.content.encoding: is 'gzip'; only base64 is read"),
    (har_of({**entry(), "startedDateTime": "yesterday"}),
     "entries[0].startedDateTime: is not an ISO 8601 time"),
    (har_of({**entry(), "request": {"method": "GET", "url": URL, "headers": [{"name": 1}]}}),
     "entries[0].request.headers[0]: has a name or value that is not text"),
    (har_of({**entry(), "startedDateTime": "0001-01-01T00:00:00"}),
     "entries[0].startedDateTime: is not an ISO 8601 time"),
    (har_of(entry(url="https://graph.microsoft.com:99999/beta/employeeExperience/goals/exportJobs")),
     "entries[0].request.url: is not"),
    (har_of({**entry(), "request": {"method": "GET", "url": URL,
                                    "headers": [{"name": "X Bad", "value": "1"}]}}),
     "entries[0].request.headers[0].name: is not a header name"),
    (har_of(entry(url="https://example.com/only/other/traffic")),
     "none of its 1 entries is exportJobs traffic"),
])
def test_bad_har_named_exit_2_no_traceback(tmp_path, capsys, har, named):
    path = write(tmp_path / "shared.har", har)
    code, out, err = run(capsys, "har", "import", str(path))
    assert code == 2
    assert err.startswith("exportjobs har import: ") and err.count("\n") == 1, err
    assert str(path) in err and named in err, err
    assert "Traceback" not in err + out
    assert not (tmp_path / "shared.yaml").exists()


def test_binary_and_bom_and_folder(tmp_path, capsys):
    binary = tmp_path / "binary.har"
    binary.write_bytes(b"\xff\xfe{\x00")
    code, _, err = run(capsys, "har", "import", str(binary))
    assert code == 2 and "is not UTF-8 text" in err
    bom = tmp_path / "bom.har"  # Windows tools write one; the HAR spec allows it
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(har_of(entry())).encode())
    code, _, err = run(capsys, "har", "import", str(bom))
    assert code == 0, err
    code, _, err = run(capsys, "har", "import", str(tmp_path), "-o", str(tmp_path / "x.yaml"))
    assert code == 2 and "is a folder" in err


def test_joined_headers_and_odd_numbers(tmp_path, capsys):
    """Firefox joins repeated headers with line breaks; JSON's NaN and Infinity are no times."""
    joined = entry()
    joined["response"]["headers"].append({"name": "Set-Cookie", "value": "a=SECRET1\nb=SECRET2"})
    joined["time"] = float("inf")
    path = tmp_path / "firefox.har"
    path.write_text(json.dumps(har_of(joined)), encoding="utf-8")  # writes Infinity
    code, _, err = run(capsys, "har", "import", str(path))
    assert code == 0, err
    (item,) = load_cassette(tmp_path / "firefox.yaml").interactions
    assert [v for k, v in item["response"]["headers"] if k == "Set-Cookie"] == ["REDACTED"] * 2
    assert item["duration"] == 0.0


def test_unanswered_entries_refused_or_skipped(tmp_path, capsys):
    path = write(tmp_path / "cancelled.har", har_of(entry(), entry(status=0)))
    code, _, err = run(capsys, "har", "import", str(path))
    assert code == 2 and "entries[1].response.status" in err and "--skip-unanswered" in err
    code, _, err = run(capsys, "har", "import", str(path), "--skip-unanswered")
    assert code == 0, err
    assert "entries[1]: no response; skipped" in err
    assert len(load_cassette(tmp_path / "cancelled.yaml").interactions) == 1


def test_size_cap_and_its_override(tmp_path, capsys):
    path = write(tmp_path / "big.har", har_of(*[entry() for _ in range(200)]))
    size = path.stat().st_size
    code, _, err = run(capsys, "har", "import", str(path), "--max-size", "0.01")
    assert code == 2 and f"is {size:,} bytes" in err and "--max-size" in err
    code, _, err = run(capsys, "har", "import", str(path), "--max-size", "1")
    assert code == 0, err


def test_body_missing_from_the_har_is_said(tmp_path, capsys):
    no_body = entry()
    no_body["response"]["content"] = {"size": 512, "mimeType": "application/json"}
    path = write(tmp_path / "nobody.har", har_of(no_body))
    code, _, err = run(capsys, "har", "import", str(path))
    assert code == 0
    assert "entries[0]: the HAR holds no response body (512 bytes" in err


# --- export ----------------------------------------------------------------------------------


def test_export_default_path_stdout_and_no_overwrite(tmp_path, capsys):
    cassette = tmp_path / "run.yaml"
    assert run(capsys, "har", "import", str(CHROME), "-o", str(cassette))[0] == 0
    code, out, err = run(capsys, "har", "export", str(cassette))
    assert code == 0, err
    har = json.loads((tmp_path / "run.har").read_text(encoding="utf-8"))
    assert len(har["log"]["entries"]) == 7
    code, _, err = run(capsys, "har", "export", str(cassette))
    assert code == 2 and "already exists; pass --force" in err
    code, out, err = run(capsys, "har", "export", str(cassette), "-o", "-")
    assert code == 0 and json.loads(out) == har
    code, _, err = run(capsys, "har", "export", str(cassette), "-o", str(cassette), "--force")
    assert code == 2 and "is the cassette itself" in err
    assert len(load_cassette(cassette).interactions) == 7


def test_export_of_a_bad_cassette_is_named(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("not: [a cassette\n")
    code, _, err = run(capsys, "har", "export", str(bad))
    assert code == 2 and str(bad) in err and "Traceback" not in err
    assert not (tmp_path / "bad.har").exists()


def test_har_command_from_the_installed_entry_point(tmp_path):
    """The command as users run it (a process), round trip included."""
    cassette = tmp_path / "c.yaml"
    exe = [sys.executable, "-m", "exportjobs", "har"]
    done = subprocess.run([*exe, "import", str(CHROME), "-o", str(cassette)], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    done = subprocess.run([*exe, "export", str(cassette), "-o", "-"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["log"]["creator"]["name"] == "exportjobs"
