"""Event filters: the same decision for the SDK, the notifier and the console, and the `--where` text form."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from schemas import Authority, Category, ChangeEvent, EventType, Incident, Location, Provenance
from schemas.subscriptions import Corroboration, EventFilter, Near
from services.filters import FilterSyntaxError, corroboration, describe, distance_km, matches, parse_where

AT = datetime(2025, 10, 24, 10, 0, tzinfo=UTC)


def _incident(*, sources: list[str], authority: Authority = Authority.news, location: Location | None = None,
              category: Category = Category.shooting) -> Incident:
    evidence = Provenance(value="shooting", source_id=sources[0], guid="g1", authority=authority, reported_at=AT)
    return Incident(incident_id="inc_1", version=2, title="Man shot", opened_at=AT, updated_at=AT, category=category,
                    location=location, sources=sources, provenance={"category": [evidence]})


def _event(kind: EventType = EventType.condition_updated, field: str | None = "condition") -> ChangeEvent:
    return ChangeEvent(event_id="e1", type=kind, incident_id="inc_1", version=2, field=field, reported_at=AT,
                       detected_at=AT, summary="condition of man: critical → stable")


WALTHAMSTOW = Location(name="Walthamstow", region="London", lat=51.5839, lon=-0.0199)


def test_corroboration_counts_sources_and_official_ones() -> None:
    assert corroboration(_incident(sources=["a"])) is Corroboration.single
    assert corroboration(_incident(sources=["a", "b"])) is Corroboration.several
    assert corroboration(_incident(sources=["met"], authority=Authority.official)) is Corroboration.official


def test_haversine_distance_is_in_kilometres() -> None:
    # Walthamstow to Trafalgar Square is about 11 km as the crow flies.
    assert 10.5 < distance_km(51.5839, -0.0199, 51.5080, -0.1281) < 12


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (EventFilter(), True),
        (EventFilter(types=[EventType.condition_updated]), True),
        (EventFilter(types=[EventType.cordon_updated]), False),
        (EventFilter(fields=["condition"]), True),
        (EventFilter(fields=["injured"]), False),
        (EventFilter(categories=[Category.shooting]), True),
        (EventFilter(categories=[Category.fire]), False),
        (EventFilter(regions=["london"]), True),
        (EventFilter(regions=["walthamstow"]), True),
        (EventFilter(regions=["Manchester"]), False),
        (EventFilter(near=Near(lat=51.508, lon=-0.128, km=15)), True),
        (EventFilter(near=Near(lat=51.508, lon=-0.128, km=5)), False),
        (EventFilter(min_corroboration=Corroboration.several), True),
        (EventFilter(min_corroboration=Corroboration.official), False),
    ],
    ids=["empty-passes", "type", "other-type", "field", "other-field", "category", "other-category",
         "region-case-insensitive", "location-name", "other-region", "within-radius", "outside-radius",
         "several-sources", "not-official"],
)
def test_each_condition(where: EventFilter, expected: bool) -> None:
    incident = _incident(sources=["a", "b"], location=WALTHAMSTOW)
    assert matches(where, _event(), incident) is expected


def test_incident_conditions_never_pass_without_the_incident_or_its_place() -> None:
    assert not matches(EventFilter(categories=[Category.shooting]), _event(), None)
    assert not matches(EventFilter(regions=["London"]), _event(), _incident(sources=["a"]))
    no_coordinates = _incident(sources=["a"], location=Location(name="Walthamstow", region="London"))
    assert not matches(EventFilter(near=Near(lat=51.58, lon=-0.02, km=50)), _event(), no_coordinates)
    # Event-only filters need no incident.
    assert matches(EventFilter(types=[EventType.condition_updated]), _event(), None)


def test_where_text_round_trips() -> None:
    where = parse_where("type=condition_updated,cordon_updated category=shooting region='Greater London' "
                        "near=51.58,-0.02,5km corroboration=several field=injured")
    assert where.types == [EventType.condition_updated, EventType.cordon_updated]
    assert where.categories == [Category.shooting]
    assert where.regions == ["Greater London"]
    assert where.near == Near(lat=51.58, lon=-0.02, km=5)
    assert where.min_corroboration is Corroboration.several
    assert where.fields == ["injured"]
    assert parse_where(describe(where)) == where
    assert parse_where("") == EventFilter()
    assert parse_where(["type=cordon_updated", "type=condition_updated"]).types == [EventType.cordon_updated,
                                                                                    EventType.condition_updated]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("category", "expected name=value"),
        ("colour=red", "unknown filter 'colour'"),
        ("category=riot", "riot"),
        ("type=everything", "everything"),
        ("near=51.5,-0.1", "near takes latitude,longitude,km"),
        ("near=95,0,5", "lat"),
        ("corroboration=rumour", "rumour"),
    ],
    ids=["no-value", "unknown-name", "unknown-category", "unknown-type", "near-needs-three", "latitude-range",
         "unknown-corroboration"],
)
def test_bad_where_text_names_the_term(text: str, message: str) -> None:
    with pytest.raises(FilterSyntaxError, match=message):
        parse_where(text)
