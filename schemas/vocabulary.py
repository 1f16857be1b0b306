"""The incident vocabulary of design.md §3: every value is exactly one of these strings."""

from __future__ import annotations

from enum import StrEnum


class Authority(StrEnum):
    """How much a source is trusted; official outranks news, news outranks blog and social."""

    official = "official"
    news = "news"
    blog = "blog"
    social = "social"

    @property
    def rank(self) -> int:
        return _AUTHORITY_RANK[self]


_AUTHORITY_RANK = {Authority.social: 0, Authority.blog: 1, Authority.news: 2, Authority.official: 3}


class Category(StrEnum):
    shooting = "shooting"
    stabbing = "stabbing"
    assault = "assault"
    fire = "fire"
    explosion = "explosion"
    collision = "collision"
    flood = "flood"
    missing_person = "missing_person"
    terrorism = "terrorism"
    other = "other"


class Role(StrEnum):
    victim = "victim"
    subject = "subject"
    suspect = "suspect"
    officer = "officer"
    bystander = "bystander"
    unknown = "unknown"


class Condition(StrEnum):
    critical = "critical"
    serious = "serious"
    stable = "stable"
    minor = "minor"
    discharged = "discharged"
    deceased = "deceased"
    unknown = "unknown"


class InvestigationBody(StrEnum):
    IOPC = "IOPC"
    police = "police"
    fire_service = "fire_service"
    HSE = "HSE"
    coroner = "coroner"
    other = "other"


class InvestigationKind(StrEnum):
    independent = "independent"
    criminal = "criminal"
    murder = "murder"
    fire = "fire"
    misconduct = "misconduct"
    inquest = "inquest"
    other = "other"


class InvestigationStatus(StrEnum):
    open = "open"
    closed = "closed"


class Cordon(StrEnum):
    in_place = "in_place"
    lifted = "lifted"


class PublicRisk(StrEnum):
    ongoing = "ongoing"
    none = "none"


class Verdict(StrEnum):
    """The dedup stage's judgement of a raw update."""

    new = "new"
    revision = "revision"
    duplicate = "duplicate"


class RevisionKind(StrEnum):
    """What a revision changed: facts (numbers, conditions, names, quotes, places) or only the wording's surface."""

    factual = "factual"
    cosmetic = "cosmetic"


class EventType(StrEnum):
    incident_opened = "incident_opened"
    category_updated = "category_updated"
    location_updated = "location_updated"
    condition_updated = "condition_updated"
    casualty_added = "casualty_added"
    casualties_updated = "casualties_updated"
    investigation_opened = "investigation_opened"
    investigation_closed = "investigation_closed"
    cordon_updated = "cordon_updated"
    public_risk_updated = "public_risk_updated"
    arrests_updated = "arrests_updated"
    charges_updated = "charges_updated"
    statement_added = "statement_added"
    source_added = "source_added"
    incidents_merged = "incidents_merged"
