"""JSON Schema export of the message contracts, for consumers that validate.

>>> sorted(json_schema("rum")["required"])[:3]
['client_ip', 'duration_ms', 'method']
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from apiwatch.models.alerts import AlertEvent
from apiwatch.models.deadletter import DeadLetter
from apiwatch.models.events import RumEvent, SyntheticResult

SCHEMAS: dict[str, type[BaseModel]] = {
    "rum": RumEvent,
    "synthetic": SyntheticResult,
    "alert": AlertEvent,
    "deadletter": DeadLetter,
}


def json_schema(name: str) -> dict[str, Any]:
    model = SCHEMAS[name]
    schema = model.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://apiwatch.dev/schemas/{name}.json"
    return schema
