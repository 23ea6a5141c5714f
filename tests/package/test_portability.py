"""Nothing POSIX-only at import or in ``--help``: checked in a child Python from which the
POSIX-only calls and modules have been taken away, as on Windows."""

from __future__ import annotations

import subprocess
import sys
import textwrap

WITHOUT_POSIX = textwrap.dedent("""
    import asyncio, os, signal, sys
    for name in ("register_at_fork", "fork", "getuid", "killpg"):
        if hasattr(os, name):
            delattr(os, name)
    for name in ("SIGKILL", "SIGHUP", "SIGQUIT"):
        if hasattr(signal, name):
            delattr(signal, name)
    for name in ("resource", "fcntl", "termios", "pwd", "grp"):
        sys.modules[name] = None  # an import of it now fails, as on Windows

    def no_signal_handlers(self, *args, **kwargs):
        raise NotImplementedError
    asyncio.AbstractEventLoop.add_signal_handler = no_signal_handlers
    asyncio.BaseEventLoop.add_signal_handler = no_signal_handlers
    asyncio.SelectorEventLoop.add_signal_handler = no_signal_handlers
""")

IMPORT_EVERYTHING = WITHOUT_POSIX + textwrap.dedent("""
    import importlib, pkgutil
    import exportjobs
    names = [m.name for m in pkgutil.walk_packages(exportjobs.__path__, "exportjobs.")]
    names = [n for n in names if not n.endswith(("mitmproxy_script", "__main__"))]
    for name in names:
        importlib.import_module(name)
    print(len(names), "modules")
    from exportjobs.cli import main
    sys.argv = ["exportjobs", "--help"]
    main()
""")


def _child(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_every_module_imports_and_help_runs_without_posix_calls():
    proc = _child(IMPORT_EVERYTHING)
    assert proc.returncode == 0, proc.stderr
    assert "modules" in proc.stdout and "usage: exportjobs" in proc.stdout


def test_the_check_catches_a_posix_only_call_at_import():
    broken = WITHOUT_POSIX + "import os\nos.register_at_fork(after_in_child=print)\n"
    assert _child(broken).returncode != 0
