"""The AsyncAPI document: checked in and current, covering every stream and stage, its payloads what is written."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from redis.asyncio import Redis

from schemas import ChangeEvent, EventType
from services import app
from services.asyncapi import ASYNCAPI_PATH, document, render
from services.names import STAGE_INPUTS, STREAM_MODELS, Keys
from services.stage import dead_letter
from services.wire import DATA_FIELD, entry_data, entry_fields


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return document()


def test_checked_in_document_is_current() -> None:
    """schemas/asyncapi.json equals what the routers and models generate (run `python -m services.asyncapi`)."""
    assert ASYNCAPI_PATH.exists(), f"{ASYNCAPI_PATH} missing: run python -m services.asyncapi"
    assert ASYNCAPI_PATH.read_text(encoding="utf-8") == render(), f"{ASYNCAPI_PATH} is stale"


def test_every_stream_has_a_channel_with_its_model(spec: dict[str, Any]) -> None:
    """Each stream of the stream → model table, and the dead letters, is a channel whose message is its model."""
    keys = Keys()
    for name, model in STREAM_MODELS.items():
        channel = spec["channels"][name]
        assert channel["address"] == keys.stream(name)
        assert list(channel["messages"]) == [model.__name__]
    assert spec["channels"]["deadletter"]["address"] == keys.deadletter


def test_every_router_stage_reads_in_its_group(spec: dict[str, Any]) -> None:
    """Each stage with a router has a reader and a reclaimer on its input stream, in its consumer group."""
    for stage in app._ROUTERS:
        stream, group = STAGE_INPUTS[stage]
        for role in ("read", "reclaim"):
            operation = spec["operations"][f"{group}:{role}"]
            assert operation["action"] == "receive"
            assert operation["channel"] == {"$ref": f"#/channels/{stream}"}
            assert operation["bindings"]["redis"]["groupName"] == group


def test_every_stream_has_a_writer(spec: dict[str, Any]) -> None:
    """Nothing appears on a channel that no operation writes."""
    written = {op["channel"]["$ref"].rpartition("/")[2] for op in spec["operations"].values() if op["action"] == "send"}
    assert written == set(spec["channels"])


def _validate(spec: dict[str, Any], message: str, data: str) -> None:
    # The payload's $refs point into the document's components, so validate with the document as the root.
    schema = {"$ref": f"#/components/schemas/{message}", "components": spec["components"]}
    jsonschema.validate(json.loads(data), schema)


def test_a_change_event_entry_matches_its_payload(spec: dict[str, Any]) -> None:
    """What the tracker writes on `changes` is valid against the document's ChangeEvent payload."""
    at = datetime(2025, 10, 24, 9, 20, tzinfo=UTC)
    event = ChangeEvent(event_id="e_1", type=EventType.cordon_updated, incident_id="i_1", version=2, field="cordon",
                        before=None, after="in_place", reported_at=at, detected_at=at, summary="cordon: in place")
    _validate(spec, "ChangeEvent", entry_fields(event)[DATA_FIELD])


@pytest.mark.redis
async def test_a_dead_letter_entry_matches_its_payload(spec: dict[str, Any], redis: Redis, key_prefix: str) -> None:
    """The record `services.stage.dead_letter` writes is valid against the document's DeadLetterEntry payload."""
    keys = Keys(key_prefix)
    await dead_letter(redis, keys, keys.changes, "notifier", "1-0", b'{"broken": true}', ValueError("bad"), 3,
                      fields={"hook_id": "h1"})
    [(_, data)] = entry_data(await redis.xrange(keys.deadletter))
    _validate(spec, "DeadLetterEntry", data)
