"""Writes livedesk's AsyncAPI 3.0 document, `schemas/asyncapi.json`: `python -m services.asyncapi`.

Who reads which stream in which group comes from the stages' routers (every stage `services.app` has a router
for), through FastStream's AsyncAPI generator, so a new stage appears when the file is generated again. The stages
write with plain XADD (in Lua scripts and pipelines), which FastStream cannot see: those writes are declared here, as
documentation-only publishers on a broker that is never started, in `WRITERS`. The document is then reshaped around
the streams: one channel per stream with its `schemas` model as the payload (serialization-mode JSON Schema, the
same as `schemas/json/`), one operation per reader or writer. It carries no timestamps, host names or consumer
names, and its keys are sorted, so generating it twice gives the same bytes; tests/schemas/test_asyncapi.py fails
when the checked-in file is stale.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from faststream.redis import RedisBroker
from faststream.specification import AsyncAPI
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from redis.asyncio import Redis

import schemas
from schemas import ChangeEvent, DeadLetter, Delivery
from services import app
from services.names import STREAM_MODELS, Keys
from services.settings import Settings
from services.stage import StageContext

ASYNCAPI_PATH = Path(schemas.__file__).parent / "asyncapi.json"
# The contract's own version: raise it when a stream's payload changes in a way old readers would not accept.
CONTRACT_VERSION = "1.0.0"
_KEYS = Keys()  # addresses are shown under the default key prefix
_SERVER = "redis://localhost:6379"
_DEAD_LETTER_ENTRY = "DeadLetterEntry"


@dataclass(frozen=True)
class Channel:
    """A stream: its address, the model of its entries' `__data__`, and what it is for."""

    address: str
    model: type[BaseModel]
    description: str
    message: str = ""  # component name of its message, when not the model's name

    @property
    def message_name(self) -> str:
        return self.message or self.model.__name__


CHANNELS: dict[str, Channel] = {
    "raw": Channel(_KEYS.raw, STREAM_MODELS["raw"], "New and edited feed entries, as the poller saw them."),
    "updates": Channel(_KEYS.updates, STREAM_MODELS["updates"], "Raw updates with their dedup verdict (new, "
                       "revision, duplicate); exact repeats are dropped."),
    "changes": Channel(_KEYS.changes, STREAM_MODELS["changes"], "Every real change to an incident, told once, in "
                       "order per incident. Subscribers read it in consumer groups of their own."),
    "deadletter": Channel(_KEYS.deadletter, DeadLetter, "Entries a stage gave up on, each with its error and the "
                          "original entry's JSON.", message=_DEAD_LETTER_ENTRY),
    "deliveries": Channel(_KEYS.deliveries, Delivery, "Every webhook delivery attempt and its outcome; capped in "
                          "length."),
    "hookQueue": Channel(_KEYS.hook_queue("{hook_id}"), ChangeEvent, "The change events one webhook is still to be "
                         "sent, in order (one stream per hook)."),
}


@dataclass(frozen=True)
class Operation:
    """A writer (XADD) or a group reader (XREADGROUP) the routers do not declare."""

    channel: str
    description: str
    group: str | None = None  # for a reader


# The stages write with plain XADD (Lua scripts, pipelines): declared here, as publishers for the document only.
WRITERS: dict[str, Operation] = {
    "poller:write": Operation("raw", "The poller appends each new or edited entry of a feed."),
    "dedup:write": Operation("updates", "Dedup appends each entry that is not an exact repeat."),
    "tracker:write": Operation("changes", "The tracker appends an incident's change events in the same atomic step "
                               "that stores its new state."),
    "stages:dead-letter": Operation("deadletter", "Any consuming stage moves an entry that failed too often (or can "
                                    "never parse) here and acknowledges it, in one transaction."),
    "notifier:fan-out": Operation("hookQueue", "The notifier appends each change event to the queue of every hook "
                                  "whose filter it passes."),
    "notifier:record-delivery": Operation("deliveries", "The notifier's deliverers record each attempt."),
}
# Readers outside FastStream's routers.
READERS: dict[str, Operation] = {
    "notifier:deliver": Operation("hookQueue", "The notifier's deliverers POST each hook's events in order, "
                                  "retrying with backoff.", group="deliver"),
    "subscriber:read": Operation("changes", "A subscriber (`services.client`, or any Redis client): XREADGROUP in "
                                 "a group of its own, XACK after handling each event.", group="<your group>"),
}
_ROLES = {
    "read": "Reads new entries (XREADGROUP `>`) in group `{group}`; acknowledges each after it is handled.",
    "reclaim": "Takes over entries of group `{group}` left pending longer than `reclaim_idle_ms` (XAUTOCLAIM).",
}


def documentation_broker() -> RedisBroker:
    """A broker with the routers of every stage `services.app` knows, plus `WRITERS`; never connected."""
    # model_construct: the defaults, without reading LIVEDESK_* variables or .env (the document must not vary).
    settings = Settings.model_construct(key_prefix=_KEYS.prefix, consumer="<consumer>")
    # redis-py connects on first use only, and nothing here uses it.
    broker = app.build_broker(StageContext(settings, Redis.from_url(_SERVER)), _SERVER, sorted(app._ROUTERS))
    for title, writer in WRITERS.items():
        channel = CHANNELS[writer.channel]
        broker.publisher(stream=channel.address, schema=channel.model, title=title, description=writer.description)
    return broker


def document(broker: RedisBroker | None = None) -> dict[str, Any]:
    """The AsyncAPI document of `broker` (default: `documentation_broker()`), reshaped around the streams."""
    generated = AsyncAPI(broker or documentation_broker(), title="livedesk", schema_version="3.0.0")
    spec = json.loads(generated.to_specification().to_json())
    by_address = {channel.address: name for name, channel in CHANNELS.items()}
    operations: dict[str, Any] = {}
    for title, found in spec["channels"].items():
        binding = found.get("bindings", {}).get("redis", {})
        if found["address"] not in by_address:
            raise LookupError(f"{title} uses {found['address']}, which has no entry in services.asyncapi.CHANNELS")
        group = binding.get("groupName")
        role = title.rpartition(":")[2]
        description = found.get("description") or _ROLES.get(role, "").format(group=group)
        method = binding.get("method", "xadd")  # publishers xadd; subscribers xreadgroup, or xread without a group
        operations[title] = _operation(by_address[found["address"]], method, description, group)
    for title, extra in READERS.items():
        operations[title] = _operation(extra.channel, "xreadgroup", extra.description, extra.group)
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "livedesk", "version": CONTRACT_VERSION, "description": _DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {"redis": {"host": "localhost:6379", "protocol": "redis",
                              "description": "Redis 6.2+ or Valkey: the deployment's LIVEDESK_REDIS_URL."}},
        "channels": {name: _channel(name, channel) for name, channel in CHANNELS.items()},
        "operations": operations,
        "components": {"messages": _messages(), "schemas": _schemas()},
    }


def render() -> str:
    """The checked-in text of the document."""
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _channel(name: str, channel: Channel) -> dict[str, Any]:
    found: dict[str, Any] = {
        "address": channel.address,
        "description": channel.description,
        "messages": {channel.message_name: {"$ref": f"#/components/messages/{channel.message_name}"}},
        "servers": [{"$ref": "#/servers/redis"}],
    }
    if "{hook_id}" in channel.address:
        found["parameters"] = {"hook_id": {"description": "The hook's `hook_id` (see the Hook schema)."}}
    return found


def _operation(channel: str, method: str, description: str, group: str | None) -> dict[str, Any]:
    message = CHANNELS[channel].message_name
    binding = {"method": method, "bindingVersion": "custom"}
    return {
        "action": "send" if method == "xadd" else "receive",
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{message}"}],
        "description": description,
        "bindings": {"redis": binding | ({"groupName": group} if group else {})},
    }


def _messages() -> dict[str, Any]:
    return {
        channel.message_name: {
            "name": channel.message_name,
            "contentType": "application/json",
            "summary": f"The JSON in the entry's one field, `__data__`: a {channel.message_name}.",
            "payload": {"$ref": f"#/components/schemas/{channel.message_name}"},
        }
        for channel in CHANNELS.values()
    }


def _schemas() -> dict[str, Any]:
    models = sorted({channel.model for channel in CHANNELS.values()}, key=lambda model: model.__name__)
    _, top = models_json_schema([(model, "serialization") for model in models],
                                ref_template="#/components/schemas/{model}")
    found: dict[str, Any] = top["$defs"]
    # The dead-letter entry's JSON lacks `dead_letter_id`: that is the entry's own stream id, added when it is read.
    entry = copy.deepcopy(found.pop(DeadLetter.__name__))
    entry["properties"].pop("dead_letter_id")
    entry["required"] = [name for name in entry["required"] if name != "dead_letter_id"]
    entry["title"] = _DEAD_LETTER_ENTRY
    found[_DEAD_LETTER_ENTRY] = entry
    return found


_DESCRIPTION = """\
livedesk's streams on Redis. Every entry has one field, `__data__`, holding the JSON of the channel's message \
(the same JSON Schemas are in `schemas/json/`); there are no headers. Addresses are shown under the default key \
prefix `livedesk`, which is a Redis Cluster hash tag in every key name; a deployment with `LIVEDESK_KEY_PREFIX=p` \
uses `{p}:stream:changes` and so on (a prefix that has a hash tag of its own, such as `{desk}:eu`, is used as it is).

Delivery is at-least-once: read in a consumer group, acknowledge (XACK) after handling, and take over entries a \
crashed consumer left pending (XAUTOCLAIM). Change events carry a deterministic `event_id` to deduplicate on. \
Streams are trimmed by age and length (`LIVEDESK_STREAM_RETENTION_S`, `LIVEDESK_STREAM_MAX_LEN`), never past an \
entry a group has not read and acknowledged."""


def main() -> None:
    ASYNCAPI_PATH.write_text(render(), encoding="utf-8")


if __name__ == "__main__":
    main()
