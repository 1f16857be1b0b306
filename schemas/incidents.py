"""The evolving, versioned state of one real-world incident."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, Field

from schemas.base import WireModel
from schemas.vocabulary import (
    Authority,
    Category,
    Condition,
    Cordon,
    InvestigationBody,
    InvestigationKind,
    InvestigationStatus,
    PublicRisk,
    Role,
)


class Provenance(WireModel):
    """One piece of evidence for one field: what it stated, who said it and when."""

    value: Any = Field(description="The value this evidence stated, as JSON.")
    source_id: str
    guid: str
    url: str | None = None
    authority: Authority
    reported_at: AwareDatetime
    snippet: str = Field(default="", description="The sentence that stated it.")
    inferred: bool = Field(
        default=False,
        description="A count the text gives no figure for, read from the people it names one by one or from other "
        "figures (\"seven shot, one dead\" is six injured). An inferred count never lowers a count.",
    )


class Location(WireModel):
    name: str = Field(description="Most specific place, e.g. `Walthamstow`.")
    region: str | None = Field(default=None, description="Wider area, e.g. `London`.")
    street: str | None = None
    lat: float | None = None
    lon: float | None = None


class Casualty(WireModel):
    label: str = Field(description="How reports name the person: `man`, `17-year-old boy`.")
    role: Role = Role.unknown
    condition: Condition = Condition.unknown
    life_changing: bool | None = None


class Investigation(WireModel):
    body: InvestigationBody
    kind: InvestigationKind = InvestigationKind.other
    status: InvestigationStatus = InvestigationStatus.open


class Statement(WireModel):
    speaker: str | None = Field(default=None, description="Who said it, e.g. `Metropolitan Police`.")
    quote: str
    source_id: str
    guid: str
    reported_at: AwareDatetime


class ItemRef(WireModel):
    """An entry merged into the incident."""

    source_id: str
    guid: str


class Conflict(WireModel):
    """Sources of equal rank (the same minute, the same authority) that stated different values for one field.

    The value first stated holds (`held`); the others are kept here until newer evidence settles the field.
    """

    field: str = Field(description="The field path, as in `provenance`: `category`, `casualties.man.condition`…")
    held: Provenance
    contradicted_by: list[Provenance]


class Incident(WireModel):
    """One real-world incident as livedesk currently believes it to be."""

    incident_id: str
    version: int = Field(ge=1, description="Goes up by one with every change event.")
    title: str = Field(description="Headline of the first report.")
    opened_at: AwareDatetime = Field(description="Reported time of the first evidence.")
    updated_at: AwareDatetime = Field(description="Reported time of the newest evidence.")
    category: Category = Category.other
    location: Location | None = None
    casualties: list[Casualty] = Field(default_factory=list)
    dead: int | None = None
    injured: int | None = None
    investigations: list[Investigation] = Field(default_factory=list)
    cordon: Cordon | None = None
    public_risk: PublicRisk | None = None
    arrests: int | None = None
    charges: int | None = None
    statements: list[Statement] = Field(default_factory=list)
    conflicts: list[Conflict] = Field(default_factory=list, description="Fields on which sources of equal rank "
                                      "disagree at the newest evidence.")
    places: list[str] = Field(default_factory=list, description="Every place its reports name, lower case.")
    merged_from: list[str] = Field(default_factory=list, description="Incidents found to be this one and merged "
                                   "into it; their histories are part of its history.")
    merged_into: str | None = Field(default=None, description="Set when this incident was found to be another "
                                    "one and merged into it: follow it.")
    terms: dict[str, float] = Field(default_factory=dict, description="Its reports' most distinctive words with "
                                    "their summed TF-IDF weights: what clustering compares a new report with.")
    sources: list[str] = Field(default_factory=list, description="Every source that reported on it, first seen first.")
    items: list[ItemRef] = Field(default_factory=list, description="Every entry merged into it.")
    provenance: dict[str, list[Provenance]] = Field(
        default_factory=dict,
        description="Per field path (`condition.man`, `investigations.IOPC`, `cordon`…) every piece of evidence seen.",
    )


class Decision(WireModel):
    """Why one update was merged into an incident: the clustering decision, with the features that matched."""

    update_id: str
    source_id: str
    guid: str
    verdict: str = Field(description="The update's dedup verdict: `new`, `revision` or `duplicate`.")
    how: str = Field(description="`opened` (it opened the incident), `same entry` (an edit of an entry already "
                                 "merged), `copy` (a copy of one), or `matched` (clustered on its features).")
    reason: str = Field(description="The features that matched, or why it opened an incident.")
    score: int | None = Field(default=None, description="The clustering score, when it was `matched`.")


class IncidentVersion(WireModel):
    """One stored state of an incident: what livedesk believed from `believed_at` on, and what made it so."""

    incident_id: str
    rev: int = Field(ge=1, description="The stored revision: goes up with every merged update.")
    version: int = Field(ge=1, description="The incident's version (its number of change events) at this revision.")
    believed_at: AwareDatetime = Field(description="When livedesk came to believe it: the fetch time of the update "
                                                   "that made it (in a replay, the snapshot's instant).")
    decision: Decision
    events: list[str] = Field(default_factory=list, description="The one-line summaries of the events it emitted.")
    state: dict[str, Any] = Field(description="The incident's facts at this revision, as in `incident_opened`.")
