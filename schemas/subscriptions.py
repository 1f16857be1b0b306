"""What subscribers ask for and what livedesk records of telling them: filters, webhook rules, deliveries."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import AnyHttpUrl, AwareDatetime, Field

from schemas.base import WireModel
from schemas.vocabulary import Category, EventType


class Corroboration(StrEnum):
    """How well an incident is sourced: one source, several sources, or at least one official source."""

    single = "single"
    several = "several"
    official = "official"


class Near(WireModel):
    """A circle on the map: incidents whose location lies within `km` of the point."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    km: float = Field(gt=0, le=20_000)


class EventFilter(WireModel):
    """Which change events a subscriber wants. Every condition given must hold; an empty filter passes everything.

    `types` and `fields` are about the event; the rest about the incident it changed, as it stands after the change.
    """

    types: list[EventType] = Field(default_factory=list, description="Event types, e.g. `condition_updated`.")
    fields: list[str] = Field(default_factory=list, description="Incident fields an event changed, e.g. `injured`, "
                              "`cordon`, `casualties` (a casualty's condition), `investigations`.")
    categories: list[Category] = Field(default_factory=list)
    regions: list[str] = Field(default_factory=list, description="Location name or region, case-insensitive, "
                               "e.g. `London`, `Walthamstow`, `IL`.")
    near: Near | None = None
    min_corroboration: Corroboration | None = Field(
        default=None, description="`several`: two or more sources; `official`: an official source among them.")

    @property
    def needs_incident(self) -> bool:
        """Whether deciding needs the incident's state, not just the event."""
        return bool(self.categories or self.regions or self.near or self.min_corroboration)


class HookFormat(StrEnum):
    json = "json"
    slack = "slack"


class Hook(WireModel):
    """One alerting webhook: where to POST which events, and how."""

    hook_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    url: AnyHttpUrl
    where: EventFilter = Field(default_factory=EventFilter)
    format: HookFormat = HookFormat.json
    secret: str = Field(min_length=16, description="Key of the HMAC-SHA256 signature; never shown by `hooks list`.")
    coalesce_s: float = Field(default=0, ge=0, le=3600, description="Events about one incident within this many "
                              "seconds go out as one payload; 0 sends each alone.")
    max_age_s: float = Field(default=86_400, gt=0, description="Retries stop this long after the first attempt; the "
                             "delivery then goes to the dead letters.")
    timeout_s: float = Field(default=10, gt=0, le=300)
    created_at: AwareDatetime


class Delivery(WireModel):
    """One attempt to deliver events to a hook, as recorded on the `deliveries` stream."""

    hook_id: str
    delivery_id: str = Field(description="The `Idempotency-Key`: the event id, or for a coalesced payload the id of "
                             "its first event joined with the count.")
    event_ids: list[str]
    incident_id: str
    attempt: int = Field(ge=1)
    ok: bool
    status: int | None = Field(default=None, description="The receiver's HTTP status; none when it never answered.")
    error: str | None = None
    at: AwareDatetime
    elapsed_ms: float = Field(ge=0)


class DeadLetter(WireModel):
    """An entry moved to the `deadletter` stream: the stream and group it failed in, its error and the original."""

    dead_letter_id: str = Field(description="Its id on the `deadletter` stream.")
    stream: str
    group: str
    entry_id: str
    error: str
    deliveries: int
    payload: str = Field(description="The original entry's JSON.")
    hook_id: str | None = Field(default=None, description="For a webhook delivery: the hook that gave up.")
    extra: dict[str, Any] = Field(default_factory=dict)
