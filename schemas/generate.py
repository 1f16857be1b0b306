"""Writes the JSON Schema file of every wire model: `python -m schemas.generate`."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.console import (
    ApiError,
    DeadLetterList,
    DeliveryList,
    FeedHealth,
    FeedList,
    IncidentDetail,
    IncidentPage,
)
from schemas.events import ChangeEvent
from schemas.feeds import FeedSource, RawUpdate
from schemas.incidents import Incident, IncidentVersion
from schemas.subscriptions import DeadLetter, Delivery, EventFilter, Hook
from schemas.updates import Update

JSON_DIR = Path(__file__).parent / "json"

# One file per top-level wire model; nested models are inlined as `$defs`.
WIRE_MODELS: dict[str, type[BaseModel]] = {
    "FeedSource": FeedSource,
    "RawUpdate": RawUpdate,
    "Update": Update,
    "Incident": Incident,
    "IncidentVersion": IncidentVersion,
    "ChangeEvent": ChangeEvent,
    "EventFilter": EventFilter,
    "Hook": Hook,
    "Delivery": Delivery,
    "DeadLetter": DeadLetter,
    "IncidentPage": IncidentPage,
    "IncidentDetail": IncidentDetail,
    "FeedHealth": FeedHealth,
    "FeedList": FeedList,
    "DeliveryList": DeliveryList,
    "DeadLetterList": DeadLetterList,
    "ApiError": ApiError,
}


def render(model: type[BaseModel]) -> str:
    """The checked-in text of one model's JSON Schema."""
    schema = model.model_json_schema(mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:livedesk:schemas:{model.__name__}"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main() -> None:
    JSON_DIR.mkdir(exist_ok=True)
    for name, model in WIRE_MODELS.items():
        (JSON_DIR / f"{name}.json").write_text(render(model), encoding="utf-8")


if __name__ == "__main__":
    main()
