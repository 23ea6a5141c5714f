"""mitmproxy addons for exportJobs traffic.

``exportjobs`` is the addon (``mitmdump -s addons/exportjobs.py``); the other modules hold
one idea each: ``scope`` (what is exportJobs traffic), ``upstream`` (where it goes),
``redaction`` (what never touches disk), ``cassette`` (the file format), ``matching`` (which
recording answers a request), ``replay`` (the answers), ``timeline`` (arrival order and
overlaps), ``summary`` (the console line).
"""
