"""Metrics of the tracker evaluation: pure functions over plain mappings, no I/O.

Clusterings are mappings item → cluster label over one set of items (the truth's entries). Facts are compared per
truth incident with the predicted incident that holds most of its entries (`majority_label`).
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import combinations
from typing import TypeVar

K = TypeVar("K", bound=Hashable)
L = TypeVar("L", bound=Hashable)

Key = tuple[str, str]  # (source_id, guid): an entry as truth.jsonl names it


@dataclass(frozen=True)
class PRF:
    precision: float
    recall: float
    f1: float


def f1_of(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _contingency(predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]) -> Counter[tuple[Hashable, Hashable]]:
    if predicted.keys() != truth.keys():
        raise ValueError("predicted and truth clusterings must cover the same items")
    return Counter((predicted[item], truth[item]) for item in truth)


def bcubed(predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]) -> PRF:
    """B-cubed precision and recall: per item, the share of its predicted cluster that is in its true cluster (and
    the converse), averaged over items. An empty clustering scores 1, 1."""
    if not truth:
        return PRF(1.0, 1.0, 1.0)
    both = _contingency(predicted, truth)
    predicted_size = Counter(predicted.values())
    true_size = Counter(truth.values())
    # n items share (predicted c, true t): each of them sees n of its |c| cluster-mates as correct.
    precision = sum(n * n / predicted_size[c] for (c, _), n in both.items()) / len(truth)
    recall = sum(n * n / true_size[t] for (_, t), n in both.items()) / len(truth)
    return PRF(precision, recall, f1_of(precision, recall))


def _pairs(n: int) -> int:
    return n * (n - 1) // 2


def pairwise(predicted: Mapping[K, Hashable], truth: Mapping[K, Hashable]) -> PRF:
    """Precision and recall over pairs of items put together. With no predicted pair precision is 1 (nothing
    wrongly joined); with no true pair recall is 1; F1 is 0 when both are 0."""
    both = _contingency(predicted, truth)
    joined = sum(_pairs(n) for n in Counter(predicted.values()).values())
    true = sum(_pairs(n) for n in Counter(truth.values()).values())
    correct = sum(_pairs(n) for n in both.values())
    precision = correct / joined if joined else 1.0
    recall = correct / true if true else 1.0
    return PRF(precision, recall, f1_of(precision, recall))


def singletons(items: Iterable[K]) -> dict[K, Hashable]:
    """The floor: every item in a cluster of its own."""
    return {item: ("single", item) for item in items}


def with_singletons(items: Iterable[K], assigned: Mapping[K, L]) -> dict[K, Hashable]:
    """`assigned` over `items`, every item it leaves out alone in a cluster of its own."""
    return {item: assigned.get(item, ("single", item)) for item in items}


# --- the title-overlap baseline -------------------------------------------------------------------------------

_WORD = re.compile(r"[a-z0-9]+")
# English function words. Common news words ("shot", "police") are left to the rarity rule of the baseline.
STOPWORDS = frozenset(
    _WORD.findall(
        """
        a an and are as at be been but by for from had has have he her his in into is it its not of on or over
        says she than that the their they this to up was were what when where which who will with
        """
    )
)


def title_words(title: str) -> frozenset[str]:
    """A title's content words: lower case, letters and digits, no stop word, at least three characters."""
    return frozenset(w for w in _WORD.findall(title.lower()) if len(w) >= 3 and w not in STOPWORDS)


def title_overlap_clusters(
    titles: Mapping[K, tuple[str, datetime]], *, window: timedelta, max_share: float
) -> dict[K, int]:
    """The baseline: two items (title, published) are linked when they were published within `window` of each
    other and their titles share a rare content word (`title_words`), one found in at most `max_share` of all
    titles (and in no fewer than two may count as rare); clusters are the connected components of those links."""
    parent = {item: item for item in titles}

    def root(item: K) -> K:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    postings: dict[str, list[K]] = defaultdict(list)
    for item, (title, _) in titles.items():
        for word in title_words(title):
            postings[word].append(item)
    most = max(2, int(max_share * len(titles)))
    for items in postings.values():
        if len(items) > most:
            continue  # "shooting", "police": every other title has them, they tie nothing together
        for a, b in combinations(items, 2):
            if abs(titles[a][1] - titles[b][1]) <= window:
                parent[root(a)] = root(b)
    roots = {item: root(item) for item in titles}
    labels = {r: i for i, r in enumerate(dict.fromkeys(roots.values()))}
    return {item: labels[r] for item, r in roots.items()}


# --- facts ------------------------------------------------------------------------------------------------------


def majority_label(items: Iterable[K], assigned: Mapping[K, L]) -> L | None:
    """The label held by most of `items` among those `assigned` has (ties: the smallest label by `str`); None
    when none of them is assigned."""
    counts = Counter(assigned[item] for item in items if item in assigned)
    if not counts:
        return None
    return min(counts, key=lambda label: (-counts[label], str(label)))


@dataclass(frozen=True)
class CountScore:
    """A count field (dead, injured) over truth incidents. A missing prediction (null, or no predicted incident)
    is a miss for `exact` and is left out of the mean absolute error."""

    incidents: int
    exact: int
    reported: int  # predictions with a number
    mean_abs_error: float | None  # over `reported`; None when there is none
    median_abs_error: float | None  # the same, robust to a stray "750 killed this year"

    @property
    def exact_rate(self) -> float:
        return self.exact / self.incidents if self.incidents else 0.0

    @property
    def exact_rate_reported(self) -> float | None:
        return self.exact / self.reported if self.reported else None


def score_counts(pairs: Iterable[tuple[int, int | None]]) -> CountScore:
    """(true count, predicted count or None) per incident."""
    listed = list(pairs)
    reported = [(true, predicted) for true, predicted in listed if predicted is not None]
    errors = [abs(true - predicted) for true, predicted in reported]
    return CountScore(
        incidents=len(listed),
        exact=sum(error == 0 for error in errors),
        reported=len(reported),
        mean_abs_error=statistics.fmean(errors) if errors else None,
        median_abs_error=statistics.median(errors) if errors else None,
    )


@dataclass(frozen=True)
class YesNoScore:
    """Whether something was reported (arrests > 0), per incident; a null prediction says no."""

    incidents: int
    correct: int
    true_yes: int  # incidents where truth says yes
    predicted_yes: int
    both_yes: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.incidents if self.incidents else 0.0

    @property
    def always_no(self) -> float:
        """The accuracy of answering no every time: the floor for a field that is mostly no."""
        return (self.incidents - self.true_yes) / self.incidents if self.incidents else 0.0


def score_yes_no(pairs: Iterable[tuple[int, int | None]]) -> YesNoScore:
    """(true count, predicted count or None) per incident, each read as count > 0."""
    answers = [(true > 0, predicted is not None and predicted > 0) for true, predicted in pairs]
    return YesNoScore(
        incidents=len(answers),
        correct=sum(true == predicted for true, predicted in answers),
        true_yes=sum(true for true, _ in answers),
        predicted_yes=sum(predicted for _, predicted in answers),
        both_yes=sum(true and predicted for true, predicted in answers),
    )


_ABBREVIATIONS = {"st": "saint", "ste": "sainte", "ft": "fort", "mt": "mount"}


def place_key(name: str) -> str:
    """A place name folded for comparison: lower case, punctuation dropped, `St.`/`Ft.`/`Mt.` spelled out."""
    words = _WORD.findall(name.lower())
    return " ".join(_ABBREVIATIONS.get(word, word) for word in words)


def city_names(city_or_county: str) -> frozenset[str]:
    """Every name a truth place answers to: `Goleta (Isla Vista)` is Goleta or Isla Vista; `Wise (county)` is Wise
    or Wise County; `Noble County` is that or Noble."""
    outer, _, inner = city_or_county.partition("(")
    outer, inner = outer.strip(), inner.strip(" )")
    names = {outer}
    if inner.lower() == "county":
        names.add(f"{outer} County")
    elif inner:
        names.add(inner)
    if outer.lower().endswith(" county"):
        names.add(outer[: -len(" county")])
    return frozenset(place_key(name) for name in names if name)


@dataclass(frozen=True)
class PlaceScore:
    incidents: int
    city: int  # predicted location name is one of the truth place's names
    state: int  # predicted region (or name) is the truth's state/region
    both: int
    located: int  # predictions with a location at all

    def rate(self, hits: int) -> float:
        return hits / self.incidents if self.incidents else 0.0


def place_hits(true_city: str, true_state: str, name: str | None, region: str | None) -> tuple[bool, bool]:
    """(city right, state right). The city is right when the predicted location's name is one of `city_names`;
    the state when its region is the truth's state, or its name is (a report that only names the state)."""
    if name is None:
        return False, False
    state = place_key(true_state)
    city = place_key(name) in city_names(true_city)
    return city, bool(state) and state in {place_key(name), place_key(region or "")}


def score_places(rows: Iterable[tuple[str, str, str | None, str | None]]) -> PlaceScore:
    """(true city_or_county, true state, predicted name or None, predicted region or None) per incident."""
    hits = [(name is not None, *place_hits(city, state, name, region)) for city, state, name, region in rows]
    return PlaceScore(
        incidents=len(hits),
        city=sum(city for _, city, _ in hits),
        state=sum(state for _, _, state in hits),
        both=sum(city and state for _, city, state in hits),
        located=sum(located for located, _, _ in hits),
    )


def match_items(items: Iterable[Key], truth: Iterable[Key], canonical: Callable[[str], str]) -> dict[Key, Key]:
    """Predicted entry → truth entry, for the items that have one. Exact (source_id, guid) first; else the same
    source and the same `canonical` form of the guid, because the pipeline names an entry of a feed whose GUIDs
    proved unreliable by its canonical link while truth keeps the feed's own <guid>."""
    truth_keys = set(truth)
    by_link = {(source, canonical(guid)): (source, guid) for source, guid in sorted(truth_keys)}
    matched: dict[Key, Key] = {}
    for source, guid in items:
        if (source, guid) in truth_keys:
            matched[source, guid] = (source, guid)
        elif (found := by_link.get((source, canonical(guid)))) is not None:
            matched[source, guid] = found
    return matched
