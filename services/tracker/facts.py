"""What one text states about an incident: the output of extraction, the input of merging."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
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


_SPACE = re.compile(r"\s+")


def only_added(facts: Facts, added: Iterable[str]) -> Facts:
    """The facts an edit of an entry states anew: those of sentences its previous version lacked (`added`, as the
    dedup stage found them). The rest the previous version stated already, at its own time; stated again at the
    edit's time, a cordon "in place" the previous version reported would undo a "lifted" reported since."""
    sentences = [_SPACE.sub(" ", sentence).strip() for sentence in added]

    def new(snippet: str) -> bool:
        core = snippet.removesuffix("…")
        return bool(core) and any(core in sentence or sentence in core for sentence in sentences if sentence)

    def kept(stated: Stated[T] | None) -> Stated[T] | None:
        return stated if stated is not None and new(stated.snippet) else None

    return replace(
        facts,
        category=kept(facts.category), location=kept(facts.location), dead=kept(facts.dead),
        injured=kept(facts.injured), cordon=kept(facts.cordon), public_risk=kept(facts.public_risk),
        arrests=kept(facts.arrests), charges=kept(facts.charges),
        casualties=[replace(person, condition=kept(person.condition), life_changing=kept(person.life_changing))
                    for person in facts.casualties],
        investigations=[found for found in facts.investigations if new(found.snippet)],
    )
