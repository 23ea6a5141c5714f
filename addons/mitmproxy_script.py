"""The mitmproxy script: ``mitmdump -s "$(exportjobs addon)" --set exportjobs_mode=record
--set exportjobs_cassette=FILE`` (mitmproxy and mitmweb load it the same way).

It only loads the addons, composed as ``exportjobs proxy`` composes them (``proxy_addons``):
faults answer first and the gate holds next, so both act before record, replay and the
upstream redirect. A mitmproxy that cannot import exportjobs
(installed with pipx, brew or as a binary) gets one line saying how to add it, and stops:
serving without the addons would send exportJobs traffic on to Graph, unrecorded.
"""

import logging
import sys

try:
    from exportjobs.addons.proxy import proxy_addons
except ImportError as missing:
    _why = str(missing)

    class NotInstalled:
        """Says what to do, then shuts mitmproxy down before it serves a request."""

        def running(self) -> None:
            from mitmproxy import ctx

            logging.error(
                "exportjobs: this mitmproxy's Python (%s) cannot import exportjobs (%s). Install "
                "it there: `pipx inject mitmproxy exportjobs` for a pipx mitmproxy, or `%s -m pip "
                "install exportjobs`; mitmproxy's own binaries cannot load it (use `exportjobs "
                "proxy` instead). Stopping.", sys.executable, _why, sys.executable)
            ctx.master.shutdown()

    addons: list[object] = [NotInstalled()]
else:
    addons = list(proxy_addons())  # the one composition, shared with exportjobs proxy
