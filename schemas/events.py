"""Change events: what the tracker publishes on the `changes` stream."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from schemas.base import WireModel
from schemas.vocabulary import EventType


class Evidence(WireModel):
    """The entry that justifies a change."""

    source_id: str
    guid: str
    url: str | None = None
    title: str = ""
    snippet: str = Field(default="", description="The sentence that stated the new value.")


class ChangeEvent(WireModel):
    """One real change to one incident, told once."""

    event_id: str = Field(description="Deterministic: the same change always has the same id.")
    type: EventType
    incident_id: str
    version: int = Field(ge=1, description="The incident's version after this change.")
    field: str | None = Field(default=None, description="The incident field that changed.")
    subject: str | None = Field(default=None, description="Casualty label or investigation body, where it applies.")
    before: Any = None
    after: Any = Field(default=None, description="New value; for `incident_opened` the initial state.")
    reported_at: AwareDatetime = Field(description="When the evidence was published.")
    detected_at: AwareDatetime = Field(description="When livedesk saw the evidence (its fetch time).")
    evidence: list[Evidence] = Field(default_factory=list)
    summary: str = Field(description="One human line, e.g. `condition of man: critical → stable`.")
