"""What Microsoft Graph's exportJobs API is, in one place: paths (``routes``), the
resource (``resource``), the ``@odata.context`` of bodies (``context``), what a create must be (``create``), error bodies (``errors``), ids (``ids``), media types (``media``),
timestamps (``dates``) and the JSON form of bodies (``jsontext``). The standard library only: the emulator, the
proxy addons, the simulator and the benchmarks all build on it.
"""

from exportjobs.graph.context import odata_context
from exportjobs.graph.create import CreateBody, create_key, parse_create
from exportjobs.graph.dates import graph_date, graph_time
from exportjobs.graph.errors import HTTP_ERRORS, GraphError, error_body, error_json
from exportjobs.graph.ids import is_guid, new_request_id
from exportjobs.graph.jsontext import MAX_JSON_DEPTH, JsonTooDeep, compact_json, json_depth, load_json
from exportjobs.graph.media import CSV_CONTENT_TYPE, ERROR_CONTENT_TYPE, ODATA_CONTENT_TYPE, REQUEST_JSON
from exportjobs.graph.resource import JOB_PROPERTIES, ODATA_TYPE, PENDING_STATUSES
from exportjobs.graph.routes import COLLECTION_PATH, ExportJobsRoute, match_exportjobs

__all__ = [
    "COLLECTION_PATH", "CSV_CONTENT_TYPE", "ERROR_CONTENT_TYPE", "HTTP_ERRORS", "JOB_PROPERTIES",
    "MAX_JSON_DEPTH", "ODATA_CONTENT_TYPE", "ODATA_TYPE", "PENDING_STATUSES",
    "REQUEST_JSON", "CreateBody", "ExportJobsRoute", "GraphError", "JsonTooDeep", "compact_json",
    "create_key", "error_body", "error_json", "graph_date", "graph_time", "is_guid", "json_depth",
    "load_json", "match_exportjobs", "new_request_id", "odata_context", "parse_create",
]
