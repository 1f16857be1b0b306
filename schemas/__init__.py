"""livedesk's wire contract: every model that crosses a process boundary.

This package imports nothing from `services`; JSON Schema files generated from it live in `schemas/json/`.
"""

from schemas.events import ChangeEvent, Evidence
from schemas.feeds import FeedEntry, FeedSource, RawUpdate
from schemas.incidents import (
    Casualty,
    Conflict,
    Decision,
    Incident,
    IncidentVersion,
    Investigation,
    ItemRef,
    Location,
    Provenance,
    Statement,
)
from schemas.subscriptions import Corroboration, DeadLetter, Delivery, EventFilter, Hook, HookFormat, Near
from schemas.updates import RevisionDiff, Update
from schemas.vocabulary import (
    Authority,
    Category,
    Condition,
    Cordon,
    EventType,
    InvestigationBody,
    InvestigationKind,
    InvestigationStatus,
    PublicRisk,
    RevisionKind,
    Role,
    Verdict,
)

__all__ = [
    "Authority",
    "Casualty",
    "Category",
    "ChangeEvent",
    "Condition",
    "Conflict",
    "Cordon",
    "Corroboration",
    "DeadLetter",
    "Decision",
    "Delivery",
    "EventFilter",
    "EventType",
    "Evidence",
    "FeedEntry",
    "FeedSource",
    "Hook",
    "HookFormat",
    "Incident",
    "IncidentVersion",
    "Investigation",
    "InvestigationBody",
    "InvestigationKind",
    "InvestigationStatus",
    "ItemRef",
    "Location",
    "Near",
    "Provenance",
    "PublicRisk",
    "RawUpdate",
    "RevisionDiff",
    "RevisionKind",
    "Role",
    "Statement",
    "Update",
    "Verdict",
]
