"""The wire contract: checked-in JSON Schemas are current, and stream entries are plain JSON any client reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import jsonschema
import pytest

from schemas import Authority, ChangeEvent, EventType, Evidence, FeedEntry, RawUpdate
from schemas.generate import JSON_DIR, WIRE_MODELS, render
from services.names import STREAM_MODELS
from services.wire import DATA_FIELD, JSONMessageFormat, entry_fields


@pytest.mark.parametrize("name", sorted(WIRE_MODELS))
def test_checked_in_schema_is_current(name: str) -> None:
    """Each schemas/json/<Model>.json equals what the model generates (run `python -m schemas.generate`)."""
    path = JSON_DIR / f"{name}.json"
    assert path.exists(), f"{path} missing: run python -m schemas.generate"
    assert path.read_text(encoding="utf-8") == render(WIRE_MODELS[name]), f"{path} is stale"


def test_every_stream_model_has_a_schema_file() -> None:
    """Every stream's model is published as a JSON Schema for other languages."""
    assert {model.__name__ for model in STREAM_MODELS.values()} <= set(WIRE_MODELS)


def test_vocabulary_is_exactly_the_design() -> None:
    """Event types are exactly the strings of design.md §3."""
    assert {t.value for t in EventType} == {
        "incident_opened", "category_updated", "location_updated", "condition_updated", "casualty_added",
        "casualties_updated", "investigation_opened", "investigation_closed", "cordon_updated",
        "public_risk_updated", "arrests_updated", "charges_updated", "statement_added", "source_added",
        "incidents_merged",
    }


def _event() -> ChangeEvent:
    at = datetime(2025, 10, 24, 9, 20, tzinfo=UTC)
    return ChangeEvent(
        event_id="e_1", type=EventType.condition_updated, incident_id="i_1", version=3, field="condition",
        subject="man", before="critical", after="stable", reported_at=at, detected_at=at,
        evidence=[Evidence(source_id="met-police", guid="g", title="Update — Walthamstow", snippet="now “stable”")],
        summary="condition of man: critical → stable",
    )


async def test_json_format_round_trips_non_ascii() -> None:
    """The entry value is the model's JSON itself (no envelope), and non-ASCII text survives."""
    event = _event()
    encoded = await JSONMessageFormat.encode(
        message=event.model_dump(mode="json"), reply_to=None, headers={"x": "é"}, correlation_id="c"
    )
    assert json.loads(encoded)["summary"] == "condition of man: critical → stable"
    data, headers = JSONMessageFormat.parse(encoded)
    assert ChangeEvent.model_validate_json(data) == event
    assert headers["content-type"] == "application/json"


def test_entry_fields_validate_against_the_schema() -> None:
    """What a Lua script or pipeline writes is valid against the checked-in schema."""
    fields = entry_fields(_event())
    schema = json.loads((JSON_DIR / "ChangeEvent.json").read_text())
    jsonschema.validate(json.loads(fields[DATA_FIELD]), schema)


def test_raw_update_reported_at_falls_back_to_fetch_time() -> None:
    """Evidence time is the entry's updated, else published, else fetch time, and never after the fetch."""
    fetched = datetime(2025, 10, 24, 12, tzinfo=UTC)
    entry = FeedEntry(guid="g", title="t")
    raw = RawUpdate(source_id="s", authority=Authority.news, feed_url="u", entry=entry, identity="s|g",
                    fingerprint="f", fetched_at=fetched)
    assert raw.reported_at == fetched
    published = datetime(2025, 10, 24, 9, tzinfo=UTC)
    assert raw.model_copy(update={"entry": FeedEntry(guid="g", published=published)}).reported_at == published
    future = datetime(2025, 10, 24, 18, tzinfo=UTC)
    assert raw.model_copy(update={"entry": FeedEntry(guid="g", published=future)}).reported_at == fetched


def test_undated_follows_the_entry_whatever_the_message_says() -> None:
    """`undated` is derived from the entry: a message from before the field existed, or one that contradicts its
    entry, reads as the entry says; it is in the JSON every consumer gets."""
    fetched = datetime(2025, 10, 24, 12, tzinfo=UTC)
    raw = RawUpdate(source_id="s", authority=Authority.news, feed_url="u", entry=FeedEntry(guid="g", title="t"),
                    identity="s|g", fingerprint="f", fetched_at=fetched)
    data = json.loads(raw.model_dump_json())
    assert data["undated"] is True
    older = {k: v for k, v in data.items() if k != "undated"}
    assert RawUpdate.model_validate(older).undated
    assert RawUpdate.model_validate({**data, "undated": False}).undated
    dated = {**data, "entry": {**data["entry"], "updated": "2025-10-24T09:00:00Z"}}
    assert not RawUpdate.model_validate({**dated, "undated": True}).undated


@pytest.mark.parametrize("fingerprint", ["", "a b", "a\tb", "x" * 129])
def test_a_raw_update_fingerprint_is_one_token(fingerprint: str) -> None:
    """A fingerprint with whitespace (which dedup's stored versions could not be read back from) is refused at the
    wire, where the message can be dead-lettered with a clear error, not later on every version of its entry."""
    entry = FeedEntry(guid="g", title="t")
    with pytest.raises(ValueError, match="fingerprint"):
        RawUpdate(source_id="s", authority=Authority.news, feed_url="u", entry=entry, identity="s|g",
                  fingerprint=fingerprint, fetched_at=datetime(2025, 10, 24, 12, tzinfo=UTC))
