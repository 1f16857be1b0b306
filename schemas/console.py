"""What the monitoring console's HTTP API answers: the wrappers around the wire models it lists or combines."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from schemas.base import WireModel
from schemas.incidents import Incident, IncidentVersion
from schemas.subscriptions import DeadLetter, Delivery


class IncidentPage(WireModel):
    """One page of incidents, most recently active first.

    The incidents are listed without `provenance` and `terms` (both empty here); `GET /api/incidents/{id}` has them.
    """

    incidents: list[Incident]
    next_cursor: str | None = Field(default=None, description="Pass as `cursor` for the next page; none at the end.")
    last_event_id: str | None = Field(
        default=None, description="The id of the newest change event when the page was read: open `/events` with it "
        "as `Last-Event-ID` (or `last_event_id`) to miss no change made after the page.")


class EvidenceLink(WireModel):
    """An entry merged into the incident, and where to read it."""

    source_id: str
    guid: str
    url: str | None = Field(default=None, description="The entry's link as its feed gave it (from the provenance "
                            "of any field it stated), else its guid when that is an http(s) URL; none otherwise.")


class IncidentDetail(WireModel):
    """One incident: its current state with per-field provenance, the revision held at `at` (or the latest), the
    history of revisions up to it (those of incidents merged into it included) and the link of every entry merged
    into it (each revision's `decision` names its entry by `source_id` and `guid`)."""

    incident: Incident
    at: AwareDatetime | None = Field(default=None, description="The time asked for; none for now.")
    believed: IncidentVersion = Field(description="The revision livedesk held at `at`; the latest without `at`.")
    history: list[IncidentVersion]
    evidence: list[EvidenceLink] = Field(default_factory=list, description="Every entry merged into the incident "
                                         "(its `items`), with its link.")


class FeedHealth(WireModel):
    """One feed as `livedesk feeds list --json` shows it: the registry's source and what the pollers recorded."""

    id: str
    name: str
    authority: str
    url: str
    configured_url: str | None = None
    last_polled_at: str | None = None
    last_status: str | None = Field(default=None, description="HTTP status of the last poll (`304`: not modified).")
    last_error: str | None = None
    interval_s: str | None = None
    schedule_reason: str | None = None
    next_due: AwareDatetime | None = Field(default=None, description="Its time in the due list; none when gone.")
    hot: bool = False
    pushed: bool = Field(default=False, description="A live WebSub subscription.")
    gone: bool = False
    guid_unreliable: str | None = Field(default=None, description="Why its GUIDs are not trusted, if they are not.")
    error_count: int = 0
    entries_per_day: float | None = None


class FeedList(WireModel):
    feeds: list[FeedHealth]


class DeliveryList(WireModel):
    """Delivery attempts, newest first."""

    deliveries: list[Delivery]


class DeadLetterList(WireModel):
    """Dead letters, newest first."""

    dead_letters: list[DeadLetter]


class ApiError(WireModel):
    """The body of every 4xx and 5xx answer."""

    error: str = Field(description="What is wrong, in one line.")
    parameter: str | None = Field(default=None, description="The query or path parameter at fault, if one is.")
