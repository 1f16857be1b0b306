"""The tracker on a real server: clustering races, copies before originals, follow-ups that name no place."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from schemas import Authority, Category, ChangeEvent, Decision, EventType, Update, Verdict
from services.identity import update_id
from services.names import Keys
from services.tracker import stage
from services.tracker import store as store_module
from services.tracker.extract import extract
from services.tracker.merge import open_incident
from services.tracker.stage import OriginalNotYetTrackedError, new_incident_id, process
from services.tracker.store import IncidentStore, believed_at
from services.wire import entry_data
from tests.support.extractors import a_model

pytestmark = pytest.mark.redis

T0 = datetime(2025, 10, 24, 9, tzinfo=UTC)


def update(source: str, guid: str, title: str, text: str, minutes: int = 0, *,
           verdict: Verdict = Verdict.new, duplicate_of: str | None = None) -> Update:
    identity = f"{source}|{guid}"
    at = T0 + timedelta(minutes=minutes)
    return Update(update_id=update_id(identity, title + text), verdict=verdict, source_id=source,
                  authority=Authority.official if source == "police" else Authority.news, identity=identity,
                  fingerprint="f", duplicate_of=duplicate_of, guid=guid, title=title, text=text,
                  reported_at=at, fetched_at=at)


def opened(update: Update) -> Decision:
    return Decision(update_id=update.update_id, source_id=update.source_id, guid=update.guid,
                    verdict=update.verdict.value, how="opened", reason="test")


STABBING = ("Man stabbed in Leyton", "A man was stabbed in Leyton on Friday morning. He is in a critical condition.")


@pytest.fixture
def store(redis: Redis, key_prefix: str) -> IncidentStore:
    return IncidentStore(redis, Keys(key_prefix))


async def test_second_worker_does_not_open_a_twin_incident(store: IncidentStore) -> None:
    """A commit whose clustering missed an incident opened meanwhile at the same place fails, and a retry joins it."""
    police, echo = update("police", "p1", *STABBING), update("echo", "e1", *STABBING, minutes=5)
    # Both workers looked for candidates at Leyton before either had committed: both saw none.
    incident, events = open_incident(new_incident_id(police), police, extract(police.title, police.text))
    assert await store.commit(incident, 0, events, police, ["leyton"], candidates=[], decision=opened(police))
    late, late_events = open_incident(new_incident_id(echo), echo, extract(echo.title, echo.text))
    assert not await store.commit(late, 0, late_events, echo, ["leyton"], candidates=[], decision=opened(echo))
    # Clustered again, the second report joins the first incident.
    await process(store, echo)
    (only,) = await store.all()
    assert only.incident_id == incident.incident_id
    assert {"police", "echo"} <= set(only.sources)


async def test_copy_waits_for_its_original(store: IncidentStore) -> None:
    """A copy processed before its original is retried (not dropped) and is recorded once the original is."""
    original = update("echo", "e1", *STABBING)
    copy = update("wire", "w1", *STABBING, minutes=1, verdict=Verdict.duplicate, duplicate_of=original.update_id)
    with pytest.raises(OriginalNotYetTrackedError):
        await process(store, copy)
    await process(store, original)
    assert await process(store, copy) == []
    (incident,) = await store.all()
    assert ("wire", "w1") in {(i.source_id, i.guid) for i in incident.items}


async def test_copy_of_a_non_incident_is_dropped(store: IncidentStore) -> None:
    """A copy of an entry that opened no incident is dropped quietly."""
    original = update("echo", "e2", "Cup final tickets on sale", "Tickets for the cup final go on sale on Monday.")
    copy = update("wire", "w2", original.title, original.text, verdict=Verdict.duplicate,
                  duplicate_of=original.update_id)
    await process(store, original)
    assert await process(store, copy) == []
    assert await store.all() == []


async def test_follow_up_without_a_place_joins_its_source_s_incident(store: IncidentStore) -> None:
    """A police follow-up naming no place joins the incident that source is reporting on; elsewhere it opens none."""
    await process(store, update("police", "p1", *STABBING))
    follow_up = update("police", "p2", "Update on stabbing", "The man remains in hospital. His condition is now "
                       "stable.", minutes=120)
    events = await process(store, follow_up)
    assert [(e.type, e.after) for e in events if e.type is EventType.condition_updated] == [
        (EventType.condition_updated, "stable")
    ]
    stranger = update("blog", "b1", "Update on stabbing", "The man remains in hospital. His condition is stable.",
                      minutes=130)
    assert await process(store, stranger) == []
    assert len(await store.all()) == 1


@pytest.mark.parametrize(("kind", "told"), [("cosmetic", False), ("factual", True)])
async def test_a_cosmetic_revision_is_provenance_not_evidence(store: IncidentStore, kind: str, told: bool) -> None:
    """An edit dedup calls cosmetic is recorded as an item but read for no facts; a factual one is."""
    from schemas import RevisionDiff, RevisionKind

    original = update("echo", "e1", *STABBING)
    await process(store, original)
    edited_text = STABBING[1].replace("critical", "stable")
    diff = RevisionDiff(kind=RevisionKind(kind), reason="test", added=["He is in a stable condition."])
    edit = update("echo", "e1", STABBING[0], edited_text, minutes=30, verdict=Verdict.revision).model_copy(
        update={"revision": diff, "fingerprint": "f2"}
    )
    events = await process(store, edit)
    assert any(e.type is EventType.condition_updated for e in events) is told
    (incident,) = await store.all()
    assert incident.casualties[0].condition.value == ("stable" if told else "critical")


async def test_an_edit_states_anew_only_what_it_added(store: IncidentStore) -> None:
    """The sentences an edit keeps from its previous version were evidence at that version's time: repeated at the
    edit's time, "a cordon is in place" would undo the "lifted" another source reported since."""
    from schemas import RevisionDiff, RevisionKind

    text = "A man was stabbed in Leyton on Friday morning. A cordon is in place in Leyton High Road."
    await process(store, update("echo", "e1", "Man stabbed in Leyton", text))
    await process(store, update("police", "p1", "Leyton stabbing: cordon lifted",
                                "The cordon in Leyton High Road has been lifted after the stabbing.", minutes=60))
    added = "He is now in a stable condition."
    diff = RevisionDiff(kind=RevisionKind.factual, reason="test", added=[added])
    edit = update("echo", "e1", "Man stabbed in Leyton", f"{text} {added}", minutes=90,
                  verdict=Verdict.revision).model_copy(update={"revision": diff, "fingerprint": "f2"})
    events = await process(store, edit)
    assert [e.type for e in events] == [EventType.condition_updated]
    (incident,) = await store.all()
    assert incident.cordon is not None
    assert incident.cordon.value == "lifted"


async def test_every_revision_is_kept_with_why_its_update_joined(store: IncidentStore) -> None:
    """The history holds each stored state with its clustering decision, and the state believed at any time."""
    first = update("police", "p1", *STABBING)
    follow_up = update("echo", "e1", "Leyton stabbing victim now stable",
                       "The man stabbed in Leyton on Friday is now in a stable condition, police said.", minutes=30)
    copy = update("wire", "w1", *STABBING, minutes=40, verdict=Verdict.duplicate, duplicate_of=first.update_id)
    for item in (first, follow_up, copy):
        await process(store, item)
    (incident,) = await store.all()
    history = await store.history(incident.incident_id)
    assert [(v.rev, v.decision.update_id, v.decision.how) for v in history] == [
        (1, first.update_id, "opened"), (2, follow_up.update_id, "matched"), (3, copy.update_id, "copy"),
    ]
    assert "leyton" in history[1].decision.reason.lower()
    assert history[1].decision.score is not None
    assert history[0].state["casualties"][0]["condition"] == "critical"
    assert history[1].state["casualties"][0]["condition"] == "stable"
    assert any("condition" in summary for summary in history[1].events)
    assert history[-1].version == incident.version
    # What was believed when: nothing before the first report, critical until the follow-up was fetched.
    assert believed_at(history, T0 - timedelta(seconds=1)) is None
    believed = believed_at(history, T0 + timedelta(minutes=29))
    assert believed is not None
    assert believed.rev == 1
    assert believed.state["casualties"][0]["condition"] == "critical"
    latest = believed_at(history, T0 + timedelta(days=1))
    assert latest is not None
    assert latest.rev == 3


async def test_an_update_that_changes_nothing_adds_no_revision(store: IncidentStore) -> None:
    first = update("police", "p1", *STABBING)
    await process(store, first)
    await process(store, first)
    (incident,) = await store.all()
    assert len(await store.history(incident.incident_id)) == 1


async def test_two_incidents_found_to_be_one_are_merged_with_both_histories(store: IncidentStore, redis: Redis,
                                                                            key_prefix: str) -> None:
    """A report naming only the street and one naming only the area open two incidents; a third that names both
    ties them: they are merged (the first opened survives), told once by incidents_merged, histories kept."""
    area = update("echo", "e1", "Man shot in Walthamstow",
                  "A man was shot in Walthamstow on Friday morning. He is in a critical condition.")
    street = update("wire", "w1", "Gunfire heard on Hoe Street",
                    "Residents on Hoe Street said they heard two bangs before armed officers arrived.", minutes=10)
    both = update("post", "p1", "Man shot on Hoe Street in Walthamstow",
                  "A man was shot on Hoe Street in Walthamstow. He is in a critical condition.", minutes=30)
    await process(store, area)
    await process(store, street)
    assert len(await store.all()) == 2, "the street-only report did not join the area's incident"
    events = await process(store, both)
    (survivor,) = await store.all()
    first = new_incident_id(area)
    assert survivor.incident_id == first
    assert {item.guid for item in survivor.items} == {"e1", "w1", "p1"}
    assert survivor.merged_from == [new_incident_id(street)]
    merged = [e for e in (await store.history(first)) if e.decision.how == "merged"]
    assert len(merged) == 2  # the survivor's revision and the absorbed incident's last one
    assert {m.incident_id for m in merged} == {first, new_incident_id(street)}
    history = await store.history(first)
    assert {v.incident_id for v in history} == {first, new_incident_id(street)}
    changes = [ChangeEvent.model_validate_json(data)
               for _, data in entry_data(await redis.xrange(Keys(key_prefix).changes))]
    told = [e for e in changes if e.type is EventType.incidents_merged]
    assert [(e.incident_id, e.subject) for e in told] == [(first, new_incident_id(street))]
    assert all(e.type is not EventType.incidents_merged for e in events)  # the merge was its own commit
    # The absorbed incident is answered with the survivor, and copies of its entries land there too.
    loaded = await store.load([new_incident_id(street)])
    assert loaded[new_incident_id(street)][0].incident_id == first
    absorbed_history = await store.history(new_incident_id(street))
    assert {v.incident_id for v in absorbed_history} == {new_incident_id(street)}
    assert absorbed_history[-1].decision.how == "merged"


@pytest.mark.parametrize(("max_merges", "incidents_left"), [(32, 1), (0, 2)])
async def test_a_merge_is_progress_not_a_failed_attempt(store: IncidentStore, monkeypatch: pytest.MonkeyPatch,
                                                       max_merges: int, incidents_left: int) -> None:
    """Each merge a report causes is progress: with a single attempt allowed, a report that ties two incidents still
    merges them and joins the survivor; merges stop at `_MAX_MERGES`, and the report then joins the best match."""
    monkeypatch.setattr(stage, "_MAX_ATTEMPTS", 1)
    monkeypatch.setattr(stage, "_MAX_MERGES", max_merges)
    await process(store, update("echo", "e1", "Man shot in Walthamstow",
                                "A man was shot in Walthamstow on Friday morning. He is in a critical condition."))
    await process(store, update("wire", "w1", "Gunfire heard on Hoe Street",
                                "Residents on Hoe Street said they heard two bangs before armed officers arrived.",
                                minutes=10))
    await process(store, update("post", "p1", "Man shot on Hoe Street in Walthamstow",
                                "A man was shot on Hoe Street in Walthamstow. He is in a critical condition.",
                                minutes=30))
    incidents = await store.all()
    assert len(incidents) == incidents_left
    assert sum("p1" in {item.guid for item in incident.items} for incident in incidents) == 1


SIGN_IN_WALL = ("Sign in using your account with Facebook. Welcome back. Please sign in. Why are we asking this? By "
                "submitting your registration information you agree to our Terms of Service and Privacy Policy.")


async def test_a_sites_page_furniture_ties_no_reports_together(store: IncidentStore) -> None:
    """Words at least 40% of a source's reports carry (a sign-in wall) are its site's furniture: once the source has
    a few reports, they are left out of each report's words, so stabbings it reports in three places stay three
    incidents."""
    for n, story in enumerate(["Leyton Orient win the derby", "Road works on the high street", "Library reopens"]):
        await process(store, update("station", f"other{n}", story, f"{SIGN_IN_WALL} {story} this week."))
    places = ["Leyton", "Hackney", "Brixton"]
    for n, place in enumerate(places):
        await process(store, update("station", f"s{n}", f"Man stabbed in {place}",
                                    f"{SIGN_IN_WALL} A man was stabbed in {place} on Friday.", minutes=(n + 1) * 60))
    incidents = await store.all()
    assert sorted(incident.location.name for incident in incidents if incident.location) == sorted(places)
    assert not any({"registration", "privacy", "submitting"} & set(incident.terms) for incident in incidents)
    everywhere, of_source = await store.word_frequencies(["registration", "brixton"], "station")
    assert (of_source.reports, of_source.used["registration"], of_source.used["brixton"]) == (6, 6, 1)
    assert everywhere.used["registration"] == 6


async def test_the_place_index_holds_the_incidents_still_joinable_there(store: IncidentStore) -> None:
    """A place's index holds the incidents with recent evidence there: one quiet for longer than the follow-up window
    (and the stragglers' margin) leaves it when a later report is stored at that place, and is kept all the same."""
    await process(store, update("echo", "e1", *STABBING))
    (first,) = await store.all()
    later = update("echo", "e2", "Woman stabbed in Leyton", "A woman was stabbed near Leyton station on Monday night. "
                   "She is in a stable condition.", minutes=400 * 24 * 60)
    await process(store, later)
    second = next(incident for incident in await store.all() if incident.incident_id != first.incident_id)
    assert await store.incidents_at(["leyton"], T0 - timedelta(days=1)) == [second.incident_id]
    assert await store.incidents_at(["leyton"], later.reported_at + timedelta(days=1)) == []
    assert first.incident_id in await store.load([first.incident_id])


async def test_a_report_naming_an_old_incidents_people_finds_it_by_their_names(store: IncidentStore) -> None:
    """Past the place index's horizon, a trial report still joins the incident whose people it names: the words
    index finds it."""
    first = update("echo", "e1", "Two men stabbed in Leyton", "Two men were stabbed outside a shop in Leyton on "
                   "Friday. Police named the victims as Kwabena Osei and Tomasz Wierzbicki.")
    await process(store, first)
    (incident,) = await store.all()
    trial = update("echo", "e2", "Leyton stabbing trial", "A man accused of stabbing Kwabena Osei and Tomasz "
                   "Wierzbicki outside a shop in Leyton has gone on trial.", minutes=300 * 24 * 60)
    await process(store, trial)
    (joined,) = await store.all()
    assert joined.incident_id == incident.incident_id
    assert len(joined.items) == 2


async def test_a_word_set_stops_growing_once_it_finds_nothing(store: IncidentStore, redis: Redis, key_prefix: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A word more incidents share than the limit ties none of them to a report, so its set grows no further."""
    monkeypatch.setattr(store_module, "WORD_SET_LIMIT", 3)
    for n in range(6):
        report = update("echo", f"e{n}", f"Fire number {n}", "A fire broke out.", minutes=n)
        incident, events = open_incident(new_incident_id(report), report, extract(report.title, report.text))
        assert await store.commit(incident, 0, events, report, [], None, opened(report), words=["blaze"])
    assert await redis.scard(Keys(key_prefix).word_incidents("blaze")) == 4
    assert await store.load_candidates([], ["blaze"]) == ([], {})


async def _opened_under(store: IncidentStore, guid: str, title: str, words: list[str], minutes: int) -> str:
    report = update("echo", guid, title, f"{title}.", minutes=minutes)
    incident, events = open_incident(new_incident_id(report), report, extract(report.title, report.text))
    assert await store.commit(incident, 0, events, report, [], None, opened(report), words=words)
    return incident.incident_id


async def test_candidates_are_the_incidents_named_and_those_indexed_under_the_words(
        redis: Redis, key_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`load_candidates` answers the incidents named and those indexed under any of the words, each once, sorted by
    id; an incident it holds parsed comes back as the same object until another worker changed it, whether it was
    named or found by a word. One round trip when it holds all it finds under the words, two otherwise."""
    keys = Keys(key_prefix)
    mine, other = IncidentStore(redis, keys, remember=10), IncidentStore(redis, keys)
    fire = await _opened_under(other, "e1", "Fire in Leyton", ["blaze", "leyton"], 1)
    stabbing = await _opened_under(other, "e2", "Stabbing in Ilford", ["ilford"], 2)
    ember = await _opened_under(other, "e3", "Ember fire in Leyton", ["blaze"], 3)
    unrelated = await _opened_under(other, "e4", "Crash in Hull", ["hull"], 4)
    ids, loaded = await mine.load_candidates([stabbing, fire], ["blaze", "nothing"])
    assert ids == sorted([fire, stabbing, ember])
    assert list(loaded) == ids
    assert unrelated not in loaded
    assert loaded == await other.load(ids)
    scripts: list[str] = []
    run_script = redis.eval

    def counted(script: str, *args: Any) -> Any:
        scripts.append(script)
        return run_script(script, *args)

    monkeypatch.setattr(redis, "eval", counted)
    _, again = await mine.load_candidates([stabbing], ["blaze"])
    assert all(again[incident_id][0] is loaded[incident_id][0] for incident_id in ids), "held: not parsed again"
    assert len(scripts) == 1
    (fire_incident, rev), = (await other.load([fire])).values()
    later = update("echo", "e5", "Fire in Leyton: two hurt", "Two people were hurt in the fire in Leyton.",
                   minutes=10)
    assert await other.commit(fire_incident.model_copy(update={"title": later.title}), rev, [], later, [], None,
                              opened(later))
    scripts.clear()
    _, changed = await mine.load_candidates([], ["blaze"])
    assert len(scripts) == 2, "the state of the incident changed since is read in a second round trip"
    assert changed[fire][1] == rev + 1
    assert changed[fire][0].title == later.title
    assert changed[ember][0] is loaded[ember][0]


async def test_the_facts_come_from_the_extractor_it_is_given(store: IncidentStore) -> None:
    """Another extractor behind the same interface (a model, say) decides the facts; the rest of the stage is the
    same."""
    events = await process(store, update("echo", "e1", *STABBING), a_model)
    (incident,) = await store.all()
    assert (incident.category, incident.dead, incident.location and incident.location.name) == (
        Category.fire, 2, "Leyton")
    assert [event.type for event in events] == [EventType.incident_opened]


async def test_a_remembering_store_rereads_only_incidents_that_changed(redis: Redis, key_prefix: str) -> None:
    """A worker's store keeps the incidents it parsed: loaded again unchanged, the same object comes back; once
    another worker has committed a newer revision, the newer state does, merges followed as before."""
    keys = Keys(key_prefix)
    mine, other = IncidentStore(redis, keys, remember=2), IncidentStore(redis, keys)
    police = update("police", "p1", *STABBING)
    await process(other, police)
    incident_id = new_incident_id(police)
    (first, rev), = (await mine.load([incident_id])).values()
    assert (await mine.load([incident_id]))[incident_id][0] is first
    await process(other, update("echo", "e1", "Leyton stabbing: man now stable",
                                "The man stabbed in Leyton on Friday is now in a stable condition.", minutes=30))
    (second, second_rev), = (await mine.load([incident_id])).values()
    assert second_rev == rev + 1
    assert second is not first
    assert second == (await other.load([incident_id]))[incident_id][0]
    assert second.incident_id == incident_id
    assert len(second.items) == 2
    # A failover rewound the incident to its first revision, and another update committed the second one anew.
    rewound = first.model_copy(update={"title": "Leyton stabbing: a different second revision"})
    await redis.hset(keys.incident(incident_id), mapping={"state": rewound.model_dump_json(), "rev": second_rev,
                                                           "by": "u_another_update"})
    assert (await mine.load([incident_id]))[incident_id] == (rewound, second_rev)
    # Past its size the store forgets the least recently loaded, and reads them afresh.
    fire = update("fire", "f1", "House fire in Walthamstow", "A house fire broke out in Walthamstow. Two people "
                  "were injured.", minutes=40)
    croydon = update("police", "p2", "Man stabbed in Croydon", "A man was stabbed in Croydon. He died at the scene.",
                   minutes=50)
    await process(other, fire)
    await process(other, croydon)
    await mine.load([new_incident_id(fire), new_incident_id(croydon)])
    assert (await mine.load([incident_id]))[incident_id][0] is not second


async def test_a_remembering_store_holds_what_it_committed(redis: Redis, key_prefix: str) -> None:
    """The incident a worker's store just committed is loaded again as it was committed, without reading its state
    back; once another worker committed a newer revision, that is read afresh."""
    keys = Keys(key_prefix)
    mine, other = IncidentStore(redis, keys, remember=10), IncidentStore(redis, keys)
    police = update("police", "p1", *STABBING)
    await process(mine, police)
    incident_id = new_incident_id(police)
    (stored, stored_rev), = (await other.load([incident_id])).values()
    # The stored state made unreadable, its revision and writer left as they were: only a store that reads it back
    # notices.
    await redis.hset(keys.incident(incident_id), "state", "{not an incident")
    assert (await mine.load([incident_id]))[incident_id] == (stored, stored_rev)
    assert stored_rev == 1
    with pytest.raises(ValueError, match="Invalid JSON"):
        await IncidentStore(redis, keys, remember=10).load([incident_id])
    await redis.hset(keys.incident(incident_id), "state", stored.model_dump_json())
    await process(other, update("echo", "e1", "Leyton stabbing: man now stable",
                                "The man stabbed in Leyton on Friday is now in a stable condition.", minutes=30))
    (after, after_rev), = (await mine.load([incident_id])).values()
    assert after_rev == 2
    assert after == (await other.load([incident_id]))[incident_id][0]
    assert len(after.items) == 2


async def test_the_words_of_an_update_are_counted_once_with_its_commit(redis: Redis, key_prefix: str) -> None:
    """The document frequencies count an update's words in the step that commits it: a commit that fails (another
    worker got there first) counts nothing, and the retry that succeeds counts them once; an update that opens no
    incident counts its words as it is recorded."""
    keys = Keys(key_prefix)
    store = IncidentStore(redis, keys)
    police, echo = update("police", "p1", *STABBING), update("echo", "e1", *STABBING, minutes=5)
    incident, events = open_incident(new_incident_id(police), police, extract(police.title, police.text))
    assert await store.commit(incident, 0, events, police, ["leyton"], candidates=[], decision=opened(police),
                              used=["leyton", "stabbed"])
    late, late_events = open_incident(new_incident_id(echo), echo, extract(echo.title, echo.text))
    assert not await store.commit(late, 0, late_events, echo, ["leyton"], candidates=[], decision=opened(echo),
                                  used=["leyton", "morning"])
    everywhere, of_police = await store.word_frequencies(["leyton", "stabbed", "morning"], "police")
    assert (everywhere.used, everywhere.reports) == ({"leyton": 1, "stabbed": 1}, 1)
    assert (of_police.used, of_police.reports) == ({"leyton": 1, "stabbed": 1}, 1)
    await process(store, echo)
    await process(store, update("echo", "e2", "Council budget approved", "The council approved its budget."))
    everywhere, of_echo = await store.word_frequencies(["leyton", "council"], "echo")
    assert (everywhere.used["leyton"], everywhere.reports) == (2, 3)
    assert (of_echo.used, of_echo.reports) == ({"leyton": 1, "council": 1}, 2)


async def test_the_first_look_reads_what_the_separate_reads_do(redis: Redis, key_prefix: str) -> None:
    """Word frequencies, an item's decision and the incidents at places, read in one round trip, are what each read
    gives on its own; with no words or no places, the frequencies are empty and no incident is found there."""
    keys = Keys(key_prefix)
    store = IncidentStore(redis, keys)
    police = update("police", "p1", *STABBING)
    await process(store, police)
    await process(store, update("echo", "e2", "Council budget approved", "The council approved its budget."))
    since = police.reported_at - timedelta(days=1)
    look = await store.first_look(["leyton", "stabbed", "council"], "police", police.identity,
                                  ["leyton", "walthamstow"], since)
    assert (look.everywhere, look.of_source) == await store.word_frequencies(["leyton", "stabbed", "council"],
                                                                             "police")
    assert look.everywhere.used["leyton"] == 1
    assert look.decision == await store.item_decision(police.identity) == new_incident_id(police)
    assert look.at_places == await store.incidents_at(["leyton", "walthamstow"], since) == [new_incident_id(police)]
    empty = await store.first_look([], "police", "echo|nothing", [], since)
    assert (empty.everywhere.reports, empty.of_source.used, empty.decision, empty.at_places) == (0, {}, None, [])
