"""Disk full: a cassette append that fails leaves nothing of itself in the file."""

from __future__ import annotations

import subprocess
import sys

from exportjobs.addons.cassette import load_cassette

_FULL_DISK = r'''
import asyncio, resource, signal, sys
from exportjobs.addons.cassette import new_header
from exportjobs.addons.persister import CassetteWriter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead

async def main(path, limit):
    writer = CassetteWriter(path, new_header("2026-01-01T00:00:00Z", "test"))
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))  # the disk is now "full"
    failed = []
    for n in range(1, 11):
        doc = {"interaction": n, "request": {"method": "GET", "url": f"http://h/{n}", "headers": []},
               "response": {"status": 200, "headers": [], "text": "x" * 300}}
        try:
            await writer.append(doc)
        except OSError:
            failed.append(n)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))  # space returns
    doc["interaction"], doc["response"]["text"] = 11, "y"  # shorter than what failed
    await writer.append(doc)
    await writer.close()
    print(" ".join(map(str, failed)))

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
'''


def test_a_failed_append_leaves_nothing_of_itself_in_the_file(tmp_path):
    """RLIMIT_FSIZE makes a real write(2) stop part-way (a short write, then EFBIG), as a full
    disk does; after space returns the file holds no interaction whose append failed."""
    path = tmp_path / "full.yaml"
    header_size = 200  # the limit falls inside the third or so interaction
    done = subprocess.run([sys.executable, "-c", _FULL_DISK, str(path), str(header_size + 1000)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    failed = {int(n) for n in done.stdout.split()}
    assert failed, "the limit must make some appends fail"
    loaded = load_cassette(path)
    assert loaded.torn is None
    numbers = [item["interaction"] for item in loaded.interactions]
    assert not failed & set(numbers)
    assert numbers == sorted(set(range(1, 12)) - failed)
