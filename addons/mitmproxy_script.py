"""The mitmproxy script: ``mitmdump -s "$(exportjobs addon)" --set exportjobs_mode=record
--set exportjobs_cassette=FILE`` (mitmproxy and mitmweb load it the same way).

It only loads the addons, composed as ``exportjobs proxy`` composes them (``proxy_addons``):
faults answer first and the gate holds next, so both act before record, replay and the
upstream redirect. They reach mitmproxy as one object (``addons.compose.Composed``), and this
module answers None for every hook name it does not hold itself: mitmproxy looks every hook
up on the script module for every event, and a module's missing attribute costs an error
built and thrown away each time. A mitmproxy that cannot import exportjobs
(installed with pipx, brew or as a binary) gets one line saying how to add it, and stops:
serving without the addons would send exportJobs traffic on to Graph, unrecorded.
"""

import logging
import sys

try:
    from exportjobs.addons.compose import Composed, hook_names
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
    # the one composition, shared with exportjobs proxy
    addons = [Composed(*proxy_addons())]
    globals().update((hook, None) for hook in hook_names() if hook not in globals())
