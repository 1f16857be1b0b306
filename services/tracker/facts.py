"""What one text states about an incident: the output of extraction, the input of merging."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from schemas import (
    Category,
    Condition,
    Cordon,
    InvestigationBody,
    InvestigationKind,
    InvestigationStatus,
    Location,
    PublicRisk,
    Role,
)

T = TypeVar("T")


@dataclass(frozen=True)
class Stated(Generic[T]):
    """A value and the sentence of the text that stated it (the evidence snippet). `inferred` marks a count the text
    gives no figure for, read from the people it names one by one or from other figures ("seven shot, one dead")."""

    value: T
    snippet: str
    inferred: bool = False


@dataclass(frozen=True)
class CasualtyFact:
    """One person the text talks about. `label` is normalised ("man", "17-year-old boy", "woman")."""

    label: str
    role: Role = Role.unknown
    condition: Stated[Condition] | None = None
    life_changing: Stated[bool] | None = None
    first_sentence: int = 0  # where the text first names them (the title is sentence 0)


@dataclass(frozen=True)
class InvestigationFact:
    body: InvestigationBody
    kind: InvestigationKind
    status: InvestigationStatus
    snippet: str


@dataclass(frozen=True)
class StatementFact:
    speaker: str | None
    quote: str


@dataclass
class Facts:
    """Everything one title + text states. A field is None (or empty) when the text says nothing about it.

    Where a text states a field more than once, the value is the latest-stated one ("initially critical … now
    non-life-threatening" gives `stable`).
    """

    is_incident: bool = False
    category: Stated[Category] | None = None
    location: Stated[Location] | None = None
    places: frozenset[str] = frozenset()
    casualties: list[CasualtyFact] = field(default_factory=list)
    dead: Stated[int] | None = None
    injured: Stated[int] | None = None
    investigations: list[InvestigationFact] = field(default_factory=list)
    cordon: Stated[Cordon] | None = None
    public_risk: Stated[PublicRisk] | None = None
    arrests: Stated[int] | None = None
    charges: Stated[int] | None = None
    statements: list[StatementFact] = field(default_factory=list)
