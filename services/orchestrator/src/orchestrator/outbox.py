"""Messages a decision produced, stored with the revision that made them.

Storing them in the same write that claims the revision means a crash between that write and
the publish loses nothing: the next event of the run (or the sweeper) re-publishes them with
the same CloudEvents id, and consumers treat a repeated id as a duplicate.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from contracts.events import BY_TYPE, EventData


@dataclass(frozen=True)
class OutboxMessage:
    event_id: str
    event: EventData


def dump(messages: list[OutboxMessage]) -> str:
    return json.dumps(
        [
            {
                "id": m.event_id,
                "type": m.event.event_type,
                "data": m.event.model_dump(mode="json", by_alias=True),
            }
            for m in messages
        ]
    )


def load(raw: str) -> list[OutboxMessage]:
    items: list[dict[str, Any]] = json.loads(raw)
    return [
        OutboxMessage(event_id=i["id"], event=BY_TYPE[i["type"]].model_validate(i["data"]))
        for i in items
    ]
