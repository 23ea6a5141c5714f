"""What a user gets from a wheel: built from this checkout, installed into a fresh venv
(its dependencies borrowed from the test environment, without this checkout's editable
install), and used from an empty folder far from the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a venv holding only the wheel (and a path to the deps)."""
    base = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w",
                    str(base / "dist"), str(ROOT)], check=True, timeout=300)
    wheel = next((base / "dist").glob("exportjobs-*.whl"))
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(base / "venv")],
                   check=True, timeout=120)
    site = Path(sysconfig.get_paths(vars={"base": str(base / "venv")})["purelib"])
    # A plain path entry: the dependencies' folder joins sys.path, but the .pth files in it
    # (this checkout's editable install among them) are not read.
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(base / "venv" / "bin" / "python"),
                    "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    return base / "venv" / "bin"


def _run(venv: Path, *args: str, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run([str(venv / "exportjobs"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)


def test_the_wheel_is_one_package_named_exportjobs(venv):
    site = Path(sysconfig.get_paths(vars={"base": str(venv.parent)})["purelib"])
    tops = {p.name for p in site.iterdir() if not p.name.endswith((".dist-info", ".pth"))}
    assert tops == {"exportjobs"}


def test_version_scenarios_and_copy_from_an_empty_folder(venv, tmp_path):
    version = _run(venv, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("exportjobs ")
    listed = _run(venv, "scenarios", cwd=tmp_path)
    assert listed.returncode == 0 and "duplicate-create-race" in listed.stdout
    copied = _run(venv, "scenarios", "copy", "lifecycle", "mine", cwd=tmp_path)
    assert copied.returncode == 0, copied.stderr
    first = (tmp_path / "mine" / "lifecycle.yaml").read_text().splitlines()[0]
    schema = first.partition("$schema=")[2]
    assert (tmp_path / "mine" / schema).is_file()  # the editor's schema reference still works
    again = _run(venv, "scenarios", "copy", "lifecycle", "mine", cwd=tmp_path)
    assert again.returncode == 2 and "exists already" in again.stderr


def test_a_shipped_scenario_runs_by_name(venv, tmp_path):
    proc = _run(venv, "run", "validation-errors", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_demo_runs_in_an_empty_folder(venv, tmp_path):
    proc = _run(venv, "demo", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "cassettes" / "demo.yaml").is_file()
    # the command it prints replays its cassette, from the same folder, with nothing else
    command = proc.stdout.rsplit("Replay it yourself: ", 1)[1].split()
    assert command[0] == "exportjobs", proc.stdout
    replayed = _run(venv, *command[1:], "--no-progress", cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "0 upstream connection(s)" in replayed.stdout


def test_the_mitmproxy_script_is_found_and_loads(venv, tmp_path):
    script = Path(_run(venv, "addon", cwd=tmp_path).stdout.strip())
    assert script.is_file() and str(script).startswith(str(venv.parent))
    code = textwrap.dedent(f"""
        import sys
        from mitmproxy.addons.script import load_script
        module = load_script({str(script)!r})
        print(sorted(type(m).__name__ for a in module.addons for m in a.members))
    """)
    proc = subprocess.run([str(venv / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.stdout.strip() == "['ExportJobs', 'Faults', 'RaceGate']", proc.stderr


def test_a_mitmproxy_without_the_package_says_how_to_add_it(venv, tmp_path):
    """mitmdump with the script, in a Python that cannot import exportjobs: one clear line,
    no traceback, and mitmproxy stops instead of serving."""
    script = Path(_run(venv, "addon", cwd=tmp_path).stdout.strip())
    code = textwrap.dedent(f"""
        import sys
        class NoExportjobs:
            def find_spec(self, name, path=None, target=None):
                if name == "exportjobs" or name.startswith("exportjobs."):
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        sys.meta_path.insert(0, NoExportjobs())
        from mitmproxy.tools.main import mitmdump
        mitmdump(["-s", {str(script)!r}, "--listen-host", "127.0.0.1", "--listen-port", "0"])
    """)
    proc = subprocess.run([str(venv / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    output = proc.stdout + proc.stderr
    assert "pipx inject mitmproxy exportjobs" in output
    assert "Traceback" not in output


def test_pytest_loads_the_plugin_from_the_wheel(venv, tmp_path):
    """The wheel declares the pytest11 entry point, and pytest in the fresh venv (pytest
    borrowed with the other dependencies) loads the plugin from the wheel's files."""
    site = Path(sysconfig.get_paths(vars={"base": str(venv.parent)})["purelib"])
    entry_points = next(site.glob("exportjobs-*.dist-info")) / "entry_points.txt"
    assert "[pytest11]\nexportjobs = exportjobs.pytest_plugin" in entry_points.read_text()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    shown = subprocess.run([str(venv / "python"), "-m", "pytest", "--help", "-p", "no:cacheprovider"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert "--exportjobs-record-mode={none,once,new_episodes,all}" in shown.stdout, shown.stderr
    where = subprocess.run([str(venv / "python"), "-c", "import exportjobs.pytest_plugin as p; print(p.__file__)"],
                           cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env)
    assert where.stdout.strip().startswith(str(site)), where.stderr
