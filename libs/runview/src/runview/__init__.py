"""One rendering of a run for every audience: HTTP (with presigned URLs), events (s3 refs)."""

from runview.definitions import Definitions, RunRenderer
from runview.render import (
    RunView,
    from_event_data,
    load_view,
    render_outputs,
    to_detail,
    to_event_data,
    to_resource,
)

__all__ = [
    "Definitions",
    "RunRenderer",
    "RunView",
    "from_event_data",
    "load_view",
    "render_outputs",
    "to_detail",
    "to_event_data",
    "to_resource",
]
