"""Merge rules of design.md §3: newest evidence wins, no regression, counts go up, idempotent, order-free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from random import Random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas import (
    Authority,
    Category,
    ChangeEvent,
    Condition,
    Cordon,
    EventType,
    Incident,
    InvestigationBody,
    InvestigationKind,
    InvestigationStatus,
    Location,
    PublicRisk,
    Role,
    Update,
    Verdict,
)
from services.tracker.evidence import decisive, rank
from services.tracker.facts import CasualtyFact, Facts, InvestigationFact, Stated
from services.tracker.merge import merge, open_incident

T0 = datetime(2025, 10, 24, 9, 0, tzinfo=UTC)


def update(n: int, minutes: int, *, source: str = "news", authority: Authority = Authority.news,
           verdict: Verdict = Verdict.new) -> Update:
    at = T0 + timedelta(minutes=minutes)
    return Update(
        update_id=f"u{n}", verdict=verdict, source_id=source, authority=authority, identity=f"{source}|g{n}",
        fingerprint=f"f{n}", guid=f"g{n}", url=f"https://example.org/{n}", title=f"report {n}",
        text="", reported_at=at, fetched_at=at,
    )


def facts(*, condition: Condition | None = None, cordon: Cordon | None = None, dead: int | None = None,
          risk: PublicRisk | None = None, iopc: InvestigationStatus | None = None) -> Facts:
    found = Facts(
        is_incident=True,
        category=Stated(Category.shooting, "A man was shot."),
        location=Stated(Location(name="Walthamstow", region="London"), "in Walthamstow"),
        places=frozenset({"walthamstow"}),
    )
    if condition:
        found.casualties.append(CasualtyFact("man", Role.subject, Stated(condition, f"He is {condition.value}.")))
    if cordon:
        found.cordon = Stated(cordon, f"cordon {cordon.value}")
    if dead is not None:
        found.dead = Stated(dead, f"{dead} dead")
    if risk:
        found.public_risk = Stated(risk, f"risk {risk.value}")
    if iopc:
        found.investigations.append(
            InvestigationFact(InvestigationBody.IOPC, InvestigationKind.independent, iopc, "The IOPC said.")
        )
    return found


def run(steps: list[tuple[Update, Facts]]) -> tuple[Incident, list[ChangeEvent]]:
    incident, events = open_incident("i_test", *steps[0])
    for step in steps[1:]:
        incident, more = merge(incident, *step)
        events += more
    return incident, events


class TestNewestEvidenceWins:
    def test_newer_condition_moves_the_field_and_tells_it_once(self) -> None:
        """A newer report of a different condition is one condition_updated event, before → after."""
        incident, events = run([(update(1, 0), facts(condition=Condition.critical)),
                                (update(2, 60), facts(condition=Condition.stable))])
        assert incident.casualties[0].condition is Condition.stable
        changed = [e for e in events if e.type is EventType.condition_updated]
        assert [(e.subject, e.before, e.after) for e in changed] == [("man", "critical", "stable")]
        assert changed[0].version == 2

    def test_late_straggler_is_provenance_not_a_change(self) -> None:
        """An older report arriving late is recorded but neither regresses the field nor emits an event."""
        incident, events = run([(update(1, 0), facts(condition=Condition.critical)),
                                (update(2, 120), facts(condition=Condition.stable)),
                                (update(3, 30, source="late"), facts(condition=Condition.critical))])
        assert incident.casualties[0].condition is Condition.stable
        assert [e.type for e in events if e.evidence[0].guid == "g3"] == []
        assert any(p.guid == "g3" for p in incident.provenance["casualties.man.condition"])

    def test_official_outranks_news_in_the_same_minute(self) -> None:
        """Within one minute the police's word beats a news outlet's."""
        police = update(2, 10, source="police", authority=Authority.official)
        news = update(3, 10, source="news")
        incident, _ = run([(update(1, 0), facts()), (police, facts(cordon=Cordon.lifted)),
                           (news, facts(cordon=Cordon.in_place))])
        assert incident.cordon is Cordon.lifted

    def test_counts_only_go_up_unless_official(self) -> None:
        """A lower count from news does not lower it; a newer official figure does."""
        incident, _ = run([(update(1, 0), facts(dead=3)), (update(2, 10), facts(dead=2))])
        assert incident.dead == 3
        official = update(3, 20, source="police", authority=Authority.official)
        incident, events = merge(incident, official, facts(dead=2))
        assert incident.dead == 2
        assert [(e.field, e.before, e.after) for e in events if e.type is EventType.casualties_updated] == [
            ("dead", 3, 2)
        ]


def at(n: int, minutes: int, seconds: int, source: str) -> Update:
    made = update(n, minutes, source=source)
    when = made.reported_at.replace(second=seconds)
    return made.model_copy(update={"reported_at": when, "fetched_at": when})


class TestLocation:
    def test_a_report_without_the_street_keeps_the_known_street(self) -> None:
        with_street, without = facts(), facts()
        with_street.location = Stated(Location(name="Salford", region="England", street="Eccles New Road"), "s")
        without.location = Stated(Location(name="Salford", region="England"), "s")
        incident, events = run([(update(1, 0), with_street), (update(2, 30), without)])
        assert incident.location is not None
        assert incident.location.street == "Eccles New Road"
        assert [e for e in events if e.type is EventType.location_updated] == []


class TestConflicts:
    def test_equal_sources_disagreeing_in_one_minute_are_a_conflict_not_a_flip(self) -> None:
        """Two outlets in the same minute: the first stated holds, the other is recorded, no event flips it back."""
        first, contradiction = at(2, 30, 10, "echo"), at(3, 30, 40, "wire")
        incident, events = run([(update(1, 0), facts(condition=Condition.critical)),
                                (first, facts(condition=Condition.stable)),
                                (contradiction, facts(condition=Condition.critical))])
        assert incident.casualties[0].condition is Condition.stable
        assert [(e.before, e.after) for e in events if e.type is EventType.condition_updated] == [
            ("critical", "stable")
        ]
        (conflict,) = incident.conflicts
        assert conflict.field == "casualties.man.condition"
        assert (conflict.held.source_id, conflict.held.value) == ("echo", "stable")
        assert [(p.source_id, p.value) for p in conflict.contradicted_by] == [("wire", "critical")]
        # Arriving the other way round, the same evidence gives the same state.
        reversed_order, _ = run([(update(1, 0), facts(condition=Condition.critical)),
                                 (contradiction, facts(condition=Condition.critical)),
                                 (first, facts(condition=Condition.stable))])
        assert reversed_order.casualties == incident.casualties
        assert reversed_order.conflicts == incident.conflicts

    def test_newer_evidence_settles_a_conflict(self) -> None:
        incident, events = run([(update(1, 0), facts(cordon=Cordon.in_place)),
                                (at(2, 30, 10, "echo"), facts(cordon=Cordon.lifted)),
                                (at(3, 30, 20, "wire"), facts(cordon=Cordon.in_place)),
                                (update(4, 45, source="police", authority=Authority.official),
                                 facts(cordon=Cordon.lifted))])
        assert incident.cordon is Cordon.lifted
        assert incident.conflicts == []
        assert [(e.before, e.after) for e in events if e.type is EventType.cordon_updated] == [("in_place", "lifted")]

    def test_an_outlet_correcting_itself_is_no_conflict(self) -> None:
        """Two versions of one entry in the same minute: the later one counts, alone."""
        first = at(2, 30, 10, "echo")
        corrected = first.model_copy(update={"update_id": "u2b", "reported_at": first.reported_at.replace(second=50),
                                             "fetched_at": first.reported_at.replace(second=50)})
        incident, _ = run([(update(1, 0), facts()), (first, facts(cordon=Cordon.in_place)),
                           (corrected, facts(cordon=Cordon.lifted))])
        assert incident.cordon is Cordon.lifted
        assert incident.conflicts == []


class TestEvents:
    def test_first_update_opens_the_incident_with_its_state(self) -> None:
        """incident_opened is version 1 and carries the initial state in `after`."""
        _, events = run([(update(1, 0), facts(condition=Condition.critical, cordon=Cordon.in_place))])
        assert [e.type for e in events] == [EventType.incident_opened]
        assert events[0].version == 1
        assert events[0].after["cordon"] == "in_place"
        assert events[0].after["casualties"][0]["condition"] == "critical"

    def test_investigation_opened_then_closed(self) -> None:
        """A new investigating body is investigation_opened; its newer closure is investigation_closed."""
        _, events = run([(update(1, 0), facts()), (update(2, 10), facts(iopc=InvestigationStatus.open)),
                         (update(3, 20), facts(iopc=InvestigationStatus.closed))])
        assert [e.type for e in events if e.field == "investigations"] == [
            EventType.investigation_opened, EventType.investigation_closed
        ]

    def test_duplicate_is_recorded_without_events(self) -> None:
        """A syndicated copy becomes an item of the incident and emits nothing."""
        copy = update(2, 10, source="other", verdict=Verdict.duplicate)
        incident, events = run([(update(1, 0), facts()), (copy, Facts())])
        assert events == [e for e in events if e.type is EventType.incident_opened]
        assert ("other", "g2") in {(i.source_id, i.guid) for i in incident.items}

    def test_versions_count_every_event(self) -> None:
        """Each event's version is one more than the one before, and the incident ends on the last."""
        incident, events = run([(update(1, 0), facts()),
                                (update(2, 10), facts(condition=Condition.critical, cordon=Cordon.in_place)),
                                (update(3, 20), facts(condition=Condition.stable, cordon=Cordon.lifted))])
        assert [e.version for e in events] == list(range(1, len(events) + 1))
        assert incident.version == events[-1].version

    def test_same_change_same_event_id(self) -> None:
        """Event ids are deterministic: the same evidence gives the same id on a second run."""
        steps = [(update(1, 0), facts()), (update(2, 10), facts(cordon=Cordon.in_place))]
        assert [e.event_id for e in run(steps)[1]] == [e.event_id for e in run(steps)[1]]


_STEP = st.tuples(
    st.integers(min_value=0, max_value=600),
    st.sampled_from([Authority.official, Authority.news, Authority.blog]),
    st.sampled_from([None, *Condition]),
    st.sampled_from([None, *Cordon]),
    st.sampled_from([None, 0, 1, 2, 5]),
    st.sampled_from([None, *InvestigationStatus]),
    st.sampled_from([None, *PublicRisk]),
    st.sampled_from(["man", "woman"]),
    st.integers(min_value=0, max_value=3),  # entry number: repeats are revisions of one entry
    st.booleans(),  # a syndicated copy
)
# One drawn step: minutes, authority, condition, cordon, count, IOPC status, public risk, casualty label, entry, copy.
_Draw = tuple[int, Authority, Condition | None, Cordon | None, int | None, InvestigationStatus | None,
              PublicRisk | None, str, int, bool]


def _steps(draws: list[_Draw]) -> list[tuple[Update, Facts]]:
    steps = []
    for n, (minutes, authority, condition, cordon, count, iopc, risk, label, entry, copy) in enumerate(draws):
        found = facts(condition=condition, cordon=cordon, dead=count, risk=risk, iopc=iopc)
        found.casualties = [CasualtyFact(label, c.role, c.condition) for c in found.casualties]
        if count is not None:
            found.injured, found.arrests, found.charges = (Stated(count + k, "count") for k in (1, 2, 3))
        made = update(n, minutes, source=f"s{entry % 3}", authority=authority,
                      verdict=Verdict.duplicate if copy and n else Verdict.new)
        made = made.model_copy(update={"guid": f"g{entry}", "identity": f"s{entry % 3}|g{entry}"})
        steps.append((made, Facts() if made.verdict is Verdict.duplicate else found))
    return steps


def _facts_of(incident: Incident) -> dict:  # type: ignore[type-arg]
    state = incident.model_dump(mode="json", exclude={"incident_id", "version", "title", "statements", "provenance"})
    state["items"] = sorted((i["source_id"], i["guid"]) for i in state["items"])
    state["sources"] = sorted(state["sources"])
    state["places"] = sorted(state["places"])
    return state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, min_size=1, max_size=8), st.randoms(use_true_random=False), st.data())
def test_any_order_and_duplication_gives_the_same_state(draws: list[_Draw], rng: Random, data: st.DataObject) -> None:
    """Shuffling and repeating the same updates (revisions and copies among them) never changes the final state."""
    steps = _steps(draws)
    reference, _ = run(steps)
    shuffled = list(steps)
    rng.shuffle(shuffled)
    while shuffled[0][0].verdict is Verdict.duplicate:  # an incident is opened by a report, never by a copy
        shuffled.append(shuffled.pop(0))
    repeats = data.draw(st.lists(st.sampled_from(steps), max_size=4))
    replayed, _ = run(shuffled + repeats)
    assert _facts_of(replayed) == _facts_of(reference)
    # Repeating evidence already merged never emits anything.
    again, more = merge(replayed, *steps[0])
    assert more == []
    assert _facts_of(again) == _facts_of(replayed)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_STEP, min_size=2, max_size=8))
def test_never_a_regression_to_older_evidence(draws: list[_Draw]) -> None:
    """A condition only changes on evidence that outranks every condition evidence merged before it that said
    something else, or on a conflict of equals it records (the value first stated holds)."""
    steps = _steps(draws)
    incident, _ = open_incident("i_test", *steps[0])
    for step in steps[1:]:
        before = {path: list(evidence) for path, evidence in incident.provenance.items()}
        incident, events = merge(incident, *step)
        for event in events:
            if event.type is EventType.condition_updated and event.field == "condition":
                path = f"casualties.{event.subject}.condition"
                deciding, contradicting = decisive(incident.provenance[path])
                assert step[0].guid in {deciding.guid, *(item.guid for item in contradicting)}
                # A conflict counts each entry once, by its latest version: an entry is in it by its identity.
                conflicting = {(item.source_id, item.guid) for item in contradicting}
                assert all(rank(deciding) > rank(old) or (old.source_id, old.guid) in conflicting
                           for old in before.get(path, []) if old.guid != deciding.guid and old.value != deciding.value)


def test_a_person_counted_injured_one_by_one_is_no_longer_injured_once_dead() -> None:
    """"A man was stabbed" is one injured; "the man has died" moves him to the dead, and an official figure of
    injured people named one by one never lowers a count stated as a figure."""
    hurt = facts(condition=Condition.critical)
    hurt.injured = Stated(1, "He is critical.", inferred=True)
    incident, _ = open_incident("i_1", update(1, 0), hurt)
    assert incident.injured == 1
    died = facts(condition=Condition.deceased)
    died.dead = Stated(1, "He has died.", inferred=True)
    incident, events = merge(incident, update(2, 60), died)
    assert (incident.dead, incident.injured) == (1, 0)
    assert [(e.field, e.before, e.after) for e in events if e.type is EventType.casualties_updated] == [
        ("dead", None, 1), ("injured", 1, 0)]
    seven = facts()
    seven.injured = Stated(7, "Seven people were treated.")
    fire, _ = open_incident("i_2", update(3, 0), seven)
    one = facts()
    one.injured = Stated(1, "A woman was taken to hospital.", inferred=True)
    fire, _ = merge(fire, update(4, 60, source="police", authority=Authority.official), one)
    assert fire.injured == 7


def test_a_city_does_not_replace_the_part_of_it_reported_nor_a_report_without_region_unsay_it() -> None:
    located = facts()
    located.location = Stated(Location(name="Handsworth", region="Birmingham", street="Soho Road"), "Handsworth")
    incident, _ = open_incident("i_1", update(1, 0), located)
    city = facts()
    city.location = Stated(Location(name="Birmingham", region="West Midlands"), "in Birmingham")
    bare = facts()
    bare.location = Stated(Location(name="Handsworth"), "in Handsworth")
    for n, later in enumerate((city, bare), start=2):
        incident, events = merge(incident, update(n, 60 * n), later)
        assert not [e for e in events if e.type is EventType.location_updated]
    assert incident.location == Location(name="Handsworth", region="Birmingham", street="Soho Road")


def test_a_report_names_the_incident_s_only_man_by_his_age() -> None:
    """The incident's "man" and a report's "34-year-old man" are one person: no second casualty."""
    incident, _ = open_incident("i_1", update(1, 0), facts(condition=Condition.critical))
    aged = facts()
    aged.casualties.append(CasualtyFact("34-year-old man", Role.subject, Stated(Condition.stable, "He is stable.")))
    incident, _ = merge(incident, update(2, 60), aged)
    assert [(c.label, c.condition) for c in incident.casualties] == [("man", Condition.stable)]
