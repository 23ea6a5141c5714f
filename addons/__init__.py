"""mitmproxy addons for exportJobs traffic.

``recordreplay`` is the addon (``mitmdump -s "$(exportjobs addon)"``); the other modules hold
one idea each: ``scope`` (what is exportJobs traffic), ``upstream`` (where it goes),
``redaction`` (what never touches disk), ``cassette`` (the records), ``serializer``
(their YAML text), ``persister`` (the file and its fsync writer), ``matching`` (which
recording answers a request), ``replay`` (the answers), ``timeline`` (arrival order and
overlaps), ``summary`` (the console line).
"""
