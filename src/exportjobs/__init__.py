"""exportjobs: emulate, record, replay and race Microsoft Graph's Viva Goals exportJobs API.

One import package. Its parts, in layers (each may import only those below it; the rules
are checked in tests/test_layers.py):

- ``exportjobs.graph``: what Graph's exportJobs API is (paths, errors, ids, dates); the
  standard library only. ``exportjobs.yamldoc``: the reader of YAML people write.
- ``exportjobs.simulator.emulator``: the emulated service, an aiohttp application.
- ``exportjobs.addons`` (mitmproxy addons) and ``exportjobs.simulator`` (the scenario
  runner), beside each other.
- ``exportjobs.cli`` and ``exportjobs.demo``: the command line, on top.

The folders in a checkout: ``src/exportjobs`` (this package's own modules), ``addons/``,
``simulator/`` and ``scenarios/`` (installed as ``exportjobs.addons``,
``exportjobs.simulator`` and ``exportjobs.scenarios``).
"""

__version__ = "0.2.0"
