"""How a message looks on a stream: plain JSON any Redis client can read.

Every stream entry has one field, `__data__`, whose value is the JSON of the stream's schemas model (the table in
`services.names.STREAM_MODELS`; JSON Schema files in `schemas/json/`). FastStream's default format is a Python-only
binary envelope that also corrupts non-ASCII header values, so livedesk replaces it with this one. Headers are not
carried: nothing in livedesk depends on them, and a consumer in another language should not have to parse them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from faststream.redis.parser.message import MessageFormat
from pydantic import BaseModel

if TYPE_CHECKING:
    from fast_depends.library.serializer import SerializerProto
    from faststream._internal.basic_types import SendableMessage
    from faststream._internal.parser import CodecProto

DATA_FIELD = "__data__"
_JSON_HEADERS = {"content-type": "application/json"}


class JSONMessageFormat(MessageFormat):
    """The payload's JSON as the whole entry value, no envelope."""

    __slots__ = ()

    @classmethod
    async def encode(
        cls,
        *,
        message: Sequence[SendableMessage] | SendableMessage,
        reply_to: str | None,
        headers: dict[str, Any] | None,
        correlation_id: str,
        serializer: SerializerProto | None = None,
        codec: CodecProto | None = None,
    ) -> bytes:
        built = await cls.build(
            message=message,
            reply_to=reply_to,
            headers=headers,
            correlation_id=correlation_id,
            serializer=serializer,
            codec=codec,
        )
        return built.data

    @classmethod
    def parse(cls, data: bytes) -> tuple[bytes, dict[str, Any]]:
        return data, dict(_JSON_HEADERS)


def entry_fields(model: BaseModel) -> dict[str, str]:
    """The fields of the stream entry that carries `model`, for writers that bypass FastStream (Lua, pipelines)."""
    return {DATA_FIELD: model.model_dump_json()}


def entry_data(rows: Any) -> list[tuple[str, str]]:
    """(entry id, `__data__` JSON) of each entry of an XRANGE reply, or of one stream's part of an XREAD reply."""
    decoded: list[tuple[str, str]] = []
    for entry_id, fields in rows or []:
        data = fields.get(DATA_FIELD.encode(), fields.get(DATA_FIELD, b"{}"))
        decoded.append((as_text(entry_id), as_text(data)))
    return decoded


def as_text(value: object) -> str:
    """A Redis reply value as text (redis-py returns bytes; its declared reply types are wider)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def as_optional_text(value: object) -> str | None:
    """Like `as_text`, with a missing or empty value as None."""
    return as_text(value) if value else None
