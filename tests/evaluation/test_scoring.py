"""The tracker evaluation's metrics on hand-computed examples, and the whole evaluation on a tiny archive."""

from __future__ import annotations

import json
from collections.abc import Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.identity import canonical_link
from tests.evaluation import evaluate_tracker, scoring
from tests.evaluation.scoring import PRF

# (predicted, truth, B-cubed, pairwise). Worked by hand; see each case's comment.
CLUSTERINGS = [
    pytest.param(
        {"a": "X", "b": "X", "c": "Y"}, {"a": 1, "b": 1, "c": 2}, PRF(1, 1, 1), PRF(1, 1, 1), id="perfect"
    ),
    # B³ P: a, b see 2/2, c and d 1/2 → 3/4; R: a, b 2/3, c 1/3, d 1/1 → 2/3; F1 = 12/17.
    # Pairs: predicted ab, cd; true ab, ac, bc; correct ab → P 1/2, R 1/3, F1 2/5.
    pytest.param(
        {"a": "X", "b": "X", "c": "Y", "d": "Y"},
        {"a": 1, "b": 1, "c": 1, "d": 2},
        PRF(3 / 4, 2 / 3, 12 / 17),
        PRF(1 / 2, 1 / 3, 2 / 5),
        id="one-true-cluster-split-and-one-wrong-join",
    ),
    # B³ R: a, b see 1/2, c 1/1 → 2/3. No predicted pair: P 1 by convention, R 0, F1 0.
    pytest.param(
        {"a": "a", "b": "b", "c": "c"}, {"a": 1, "b": 1, "c": 2}, PRF(1, 2 / 3, 4 / 5), PRF(1, 0, 0), id="all-alone"
    ),
    # B³ P: a, b see 2/3, c 1/3 → 5/9, R 1; F1 = 5/7. Pairs: 3 predicted, 1 true and correct → P 1/3, R 1.
    pytest.param(
        {"a": "X", "b": "X", "c": "X"}, {"a": 1, "b": 1, "c": 2}, PRF(5 / 9, 1, 5 / 7), PRF(1 / 3, 1, 1 / 2),
        id="all-together",
    ),
    pytest.param({"a": "a", "b": "b"}, {"a": 1, "b": 2}, PRF(1, 1, 1), PRF(1, 1, 1), id="no-pairs-anywhere"),
]


def _close(got: PRF, want: PRF) -> bool:
    return all(g == pytest.approx(w) for g, w in zip(vars(got).values(), vars(want).values(), strict=True))


@pytest.mark.parametrize(("predicted", "truth", "bcubed", "pairwise"), CLUSTERINGS)
def test_clustering_scores(
    predicted: dict[str, Hashable], truth: dict[str, Hashable], bcubed: PRF, pairwise: PRF
) -> None:
    """B-cubed and pairwise precision, recall and F1 are the hand-computed ones."""
    assert _close(scoring.bcubed(predicted, truth), bcubed)
    assert _close(scoring.pairwise(predicted, truth), pairwise)


def test_clusterings_must_cover_the_same_items() -> None:
    """Scoring a clustering of other items than truth's is refused, not silently skewed."""
    with pytest.raises(ValueError, match="same items"):
        scoring.pairwise({"a": 1}, {"a": 1, "b": 1})


def test_unassigned_items_are_alone() -> None:
    """Items an assignment leaves out get a cluster each, distinct from every predicted one."""
    clusters = scoring.with_singletons(["a", "b", "c"], {"a": "X", "b": "X"})
    assert clusters["a"] == clusters["b"] != clusters["c"]
    assert scoring.pairwise(clusters, {"a": 1, "b": 1, "c": 1}) == PRF(1.0, 1 / 3, 0.5)


@pytest.mark.parametrize(
    ("title", "words"),
    [
        pytest.param("The Man, 17, shot in NW D.C.", {"man", "shot"}, id="stop-and-short-words-dropped"),
        pytest.param("TULSA: Four dead", {"tulsa", "four", "dead"}, id="lower-case-no-punctuation"),
        pytest.param("", set(), id="empty"),
    ],
)
def test_title_words(title: str, words: set[str]) -> None:
    """A title's content words: lower case, three characters or more, no stop word."""
    assert scoring.title_words(title) == words


DAY0 = datetime(2025, 10, 24, tzinfo=UTC)


@pytest.mark.parametrize(
    ("titles", "together"),
    [
        # "shooting" is in 3 of 4 titles (more than max(2, 0.5 × 4)): it links nothing. "tulsa" links a and b a day
        # apart; "hesston" is rare too, but c and d are 8 days apart.
        pytest.param(
            {"a": ("Shooting in Tulsa apartment", 0), "b": ("Tulsa police name victims", 1),
             "c": ("Shooting at Hesston plant", 1), "d": ("Hesston shooting suspect", 9)},
            [{"a", "b"}, {"c"}, {"d"}],
            id="rare-word-within-window",
        ),
        pytest.param(
            {"a": ("alpha one", 0), "b": ("alpha beta", 0), "c": ("beta gamma", 2), "d": ("delta", 0)},
            [{"a", "b", "c"}, {"d"}],
            id="links-are-transitive",
        ),
    ],
)
def test_title_overlap_baseline(titles: dict[str, tuple[str, int]], together: list[set[str]]) -> None:
    """Titles sharing a rare word within the window end in one cluster, transitively; nothing else joins."""
    dated = {item: (title, DAY0 + timedelta(days=day)) for item, (title, day) in titles.items()}
    clusters = scoring.title_overlap_clusters(dated, window=timedelta(days=3), max_share=0.5)
    groups: dict[int, set[str]] = {}
    for item, label in clusters.items():
        groups.setdefault(label, set()).add(item)
    assert sorted(groups.values(), key=sorted) == sorted(together, key=sorted)


@pytest.mark.parametrize(
    ("assigned", "expected"),
    [
        pytest.param({"a": "X", "b": "Y", "c": "Y"}, "Y", id="most-entries"),
        pytest.param({"a": "Y", "b": "X"}, "X", id="tie-smallest-label"),
        pytest.param({"a": "X"}, "X", id="others-unassigned"),
        pytest.param({}, None, id="none-assigned"),
    ],
)
def test_majority_label(assigned: dict[str, str], expected: str | None) -> None:
    """A truth incident's prediction is the predicted incident holding most of its entries."""
    assert scoring.majority_label(["a", "b", "c"], assigned) == expected


def test_count_scores() -> None:
    """A null is a miss for exact match and stays out of the error: 2 exact of 4; errors 0, 2, 0."""
    score = scoring.score_counts([(2, 2), (3, 1), (1, None), (0, 0)])
    assert (score.incidents, score.exact, score.reported) == (4, 2, 3)
    assert score.exact_rate == 0.5
    assert score.mean_abs_error == pytest.approx(2 / 3)
    assert score.median_abs_error == 0
    assert scoring.score_counts([(1, None)]).mean_abs_error is None


def test_yes_no_scores() -> None:
    """Arrests read as count > 0, null as no: right on (0, null) and (2, 1), wrong on (1, 0) and (0, 3)."""
    score = scoring.score_yes_no([(0, None), (2, 1), (1, 0), (0, 3)])
    assert (score.correct, score.true_yes, score.predicted_yes, score.both_yes) == (2, 2, 2, 1)
    assert (score.accuracy, score.always_no) == (0.5, 0.5)


@pytest.mark.parametrize(
    ("city_or_county", "names"),
    [
        pytest.param("Walthamstow", {"walthamstow"}, id="plain"),
        pytest.param("Goleta (Isla Vista)", {"goleta", "isla vista"}, id="city-and-neighbourhood"),
        pytest.param("Wise (county)", {"wise", "wise county"}, id="county-in-brackets"),
        pytest.param("Noble County", {"noble county", "noble"}, id="county-spelled-out"),
        pytest.param("Saint Louis", {"saint louis"}, id="saint"),
    ],
)
def test_city_names(city_or_county: str, names: set[str]) -> None:
    """Every name a truth place answers to, folded."""
    assert scoring.city_names(city_or_county) == names


@pytest.mark.parametrize(
    ("truth", "predicted", "hits"),
    [
        pytest.param(("Walthamstow", "London"), ("walthamstow", "London"), (True, True), id="uk-case-insensitive"),
        pytest.param(("Saint Louis", "Missouri"), ("St. Louis", "Missouri"), (True, True), id="st-is-saint"),
        pytest.param(("Goleta (Isla Vista)", "California"), ("Isla Vista", "California"), (True, True),
                     id="neighbourhood"),
        pytest.param(("Tulsa", "Oklahoma"), ("Oklahoma", None), (False, True), id="only-the-state-named"),
        pytest.param(("Chicago", "Illinois"), ("Chicago", "Indiana"), (True, False), id="wrong-state"),
        pytest.param(("Tulsa", "Oklahoma"), (None, None), (False, False), id="no-location"),
    ],
)
def test_place_hits(
    truth: tuple[str, str], predicted: tuple[str | None, str | None], hits: tuple[bool, bool]
) -> None:
    """(city right, state right) of one predicted location against truth's city_or_county and state."""
    assert scoring.place_hits(*truth, *predicted) == hits


def test_score_places() -> None:
    """Rates count over every incident, a missing location as wrong."""
    score = scoring.score_places([("Tulsa", "Oklahoma", "Tulsa", "Oklahoma"), ("Tulsa", "Oklahoma", None, None)])
    assert (score.city, score.state, score.both, score.located) == (1, 1, 1, 1)
    assert score.rate(score.both) == 0.5


def test_match_items() -> None:
    """Exact (source, guid) first, then the canonical link of the guid within the same source."""
    truth = [("s", "http://x.org:80/a?lite"), ("s", "tag:x.org,2013:7")]
    items = [("s", "tag:x.org,2013:7"), ("s", "https://www.x.org/a?lite"), ("t", "https://x.org/a?lite"), ("s", "z")]
    assert scoring.match_items(items, truth, canonical_link) == {
        ("s", "tag:x.org,2013:7"): ("s", "tag:x.org,2013:7"),
        ("s", "https://www.x.org/a?lite"): ("s", "http://x.org:80/a?lite"),
    }


# --- end to end ---------------------------------------------------------------------------------------------------

SOURCES = ["east-echo", "city-wire", "south-news"]
# (snapshot instant, source, guid, title, text, true incident)
ENTRIES = [
    ("20251024T092000Z", "east-echo", "https://echo.example.org/walthamstow-shooting",
     "Man shot by police in Walthamstow",
     "A man was shot by police in Walthamstow, east London, on Thursday morning. He was taken to hospital in a "
     "critical condition.", "a"),
    ("20251024T110000Z", "city-wire", "https://wire.example.net/2025/10/24/walthamstow",
     "Walthamstow shooting: man remains in hospital",
     "The man shot by officers in Walthamstow remains in hospital in a critical condition, police said.", "a"),
    ("20251024T110000Z", "city-wire", "https://wire.example.net/2025/10/24/budget",
     "Council approves its budget", "The council approved its budget for next year after a long debate.", "c"),
    ("20251024T120000Z", "south-news", "https://south.example.com/croydon-stabbing",
     "Teenager stabbed in Croydon",
     "A 17-year-old boy was stabbed in Croydon, south London, on Friday evening. He is in a stable condition.", "b"),
]
FACTS = {
    "a": {"dead": 0, "injured": 1, "arrested": 0, "city_or_county": "Walthamstow", "state": "London",
          "category": "shooting"},
    "b": {"dead": 0, "injured": 1, "arrested": 0, "city_or_county": "Croydon", "state": "London",
          "category": "stabbing"},
}  # "c" has no facts: it is clustered, not scored for facts


def _item(guid: str, title: str, text: str, at: str) -> str:
    published = datetime.strptime(at, "%Y%m%dT%H%M%SZ").strftime("%a, %d %b %Y %H:%M:%S +0000")
    return (f"<item><title>{title}</title><link>{guid}</link><guid>{guid}</guid>"
            f"<pubDate>{published}</pubDate><description>{text}</description></item>")


def build_archive(root: Path) -> None:
    """A replay archive of ENTRIES, one snapshot per source and instant, with truth.jsonl and incidents.json."""
    (root / "snapshots").mkdir(parents=True)
    (root / "sources.toml").write_text(
        "".join(f'[[source]]\nid = "{s}"\nname = "{s}"\nurl = "https://{s}.example.org/feed"\nauthority = "news"\n\n'
                for s in SOURCES), encoding="utf-8")
    snapshots: dict[tuple[str, str], list[str]] = {}
    for at, source, guid, title, text, _ in ENTRIES:
        snapshots.setdefault((at, source), []).append(_item(guid, title, text, at))
    for (at, source), items in snapshots.items():
        channel = f"<channel><title>{source}</title>{''.join(items)}</channel>"
        body = f'<?xml version="1.0"?><rss version="2.0">{channel}</rss>'
        (root / "snapshots" / f"{at}--{source}.xml").write_text(body, encoding="utf-8")
    (root / "truth.jsonl").write_text(
        "".join(json.dumps({"source_id": e[1], "guid": e[2], "incident": e[5]}) + "\n" for e in ENTRIES),
        encoding="utf-8")
    (root / "incidents.json").write_text(json.dumps(FACTS), encoding="utf-8")


@pytest.mark.redis
def test_evaluation_end_to_end(tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The two Walthamstow reports make one incident, Croydon another, the budget item none: a perfect clustering,
    both places right; the JSON report renders as text."""
    build_archive(tmp_path / "archive")
    assert evaluate_tracker.main([str(tmp_path / "archive"), "--redis-url", redis_url, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["entries"] == {"truth": 4, "in_snapshots": 4, "absent": 0, "in_an_incident": 3,
                                 "in_no_incident": 1, "items_not_in_truth": 0}
    clustering = report["clustering"]
    assert clustering["tracker"]["pairwise"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert clustering["tracker"]["bcubed"]["f1"] == 1.0
    assert clustering["singletons"]["pairwise"]["recall"] == 0.0
    facts = report["facts"]
    assert (facts["incidents"], facts["without_facts"], facts["without_prediction"]) == (2, 1, 0)
    assert facts["location"] == {"city": 1.0, "state": 1.0, "both": 1.0, "located": 2}
    assert facts["category"] == 1.0
    # Nobody died in either incident and no report says so: a miss strictly, right when unstated is read as 0.
    assert facts["dead"]["null"] == 2
    assert (facts["dead"]["exact"], facts["dead"]["exact_unstated_as_zero"]) == (0.0, 1.0)
    text = evaluate_tracker.render(report)
    assert "tracker" in text
    assert "title overlap baseline" in text


@pytest.mark.redis
def test_saved_updates_give_the_tracker_the_same_figures(tmp_path: Path, redis_url: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """`--save-updates` writes what dedup passed on; `--from-updates` feeds the tracker alone those, in order, and
    scores the same clustering and facts as the whole replay."""
    build_archive(tmp_path / "archive")
    saved = tmp_path / "updates.jsonl"
    archive = str(tmp_path / "archive")
    assert evaluate_tracker.main([archive, "--redis-url", redis_url, "--json", "--save-updates", str(saved)]) == 0
    whole = json.loads(capsys.readouterr().out)
    assert len(saved.read_text(encoding="utf-8").splitlines()) == 4  # every entry is new: one update each
    assert evaluate_tracker.main([archive, "--redis-url", redis_url, "--json", "--from-updates", str(saved)]) == 0
    tracker_only = json.loads(capsys.readouterr().out)
    assert (tracker_only["clustering"], tracker_only["facts"]) == (whole["clustering"], whole["facts"])
    assert tracker_only["replay"]["events"] == whole["replay"]["events"]
