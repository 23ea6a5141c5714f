"""HAR 1.2 in and out: cassette interactions as HAR entries, and HAR entries as interactions.

Written with mitmproxy's own HAR code, so a HAR from here reads as one from mitmproxy's
``savehar`` does: an interaction becomes a mitmproxy flow and ``SaveHar.flow_entry`` writes
its entry; an imported entry becomes a flow through ``mitmproxy.io.har.request_to_flow``
and is then recorded as the recorder records a live flow (``request_doc``/``response_doc``,
redacted by a ``Redactor``). What mitmproxy's reader takes on trust (every field present,
the right type) is checked here first, entry by entry, so that a HAR someone shares gets an
error naming the entry and field instead of a traceback.

What a HAR cannot say (interaction numbers, concurrency, injected faults) rides along in an
``_exportjobs`` field of each entry (HAR allows custom fields that start with ``_``), so
a cassette exported and imported again replays the same; a HAR from elsewhere gets its
numbers from the order of ``startedDateTime`` and its concurrency from overlapping times.

Its modules: ``common`` (the extension field, bounds, the import's redaction, ``HarError``),
``export`` (cassette to HAR), ``reading`` (a shared HAR file, bounded), ``entries`` (HAR
entries to interactions) and ``writing`` (the imported cassette, put in place safely).
"""

from exportjobs.addons.har.common import (
    EXTENSION,
    IMPORT_HEADERS,
    IMPORT_JSON,
    IMPORT_QUERY,
    MAX_HAR_BYTES,
    HarError,
    import_redactor,
)
from exportjobs.addons.har.entries import Imported, har_interactions
from exportjobs.addons.har.export import cassette_to_har, har_chunks, har_entries, interaction_flow
from exportjobs.addons.har.reading import read_har
from exportjobs.addons.har.writing import import_header, write_cassette

__all__ = ["EXTENSION", "IMPORT_HEADERS", "IMPORT_JSON", "IMPORT_QUERY", "MAX_HAR_BYTES",
           "HarError", "Imported", "cassette_to_har", "har_chunks", "har_entries", "har_interactions",
           "import_header", "import_redactor", "interaction_flow", "read_har", "write_cassette"]
