"""The words that tell one incident's reports apart from another's: names, streets, venues. Pure functions.

A report's words are weighted by TF-IDF: how often it uses a word, against how many reports use it at all (the
document frequencies the tracker keeps in Redis, `Keys.tracker_words`). So "police", "said" and "shooting" count for
little and "Everett", "Pigtown" or "nightclub" for much. An incident keeps the summed vectors of its reports
(`Incident.terms`, its most weighted words only); the cosine of a new report's vector with it is one of the
clustering features (`services.tracker.cluster`).

Only the title and the lead are read: crawled pages end in related links and other stories, which would tie
unrelated incidents together. Nor are the words a site puts on many of its pages (`site_furniture`): a sign-in wall,
the station's name, a video playlist are rare across all sources, so they weigh much, and they tied a site's reports
on unrelated incidents together.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

LEAD_CHARS = 1500
PROFILE_TERMS = 60  # words an incident keeps: enough for its names and places, bounded whatever its size
_WORD = re.compile(r"[a-z][a-z'’-]*[a-z]|[0-9]{3,}")
# Function words and the vocabulary every incident report shares. Document frequencies would weigh them down in
# time; listing them keeps the first reports of a new deployment, when those counts are still small, from linking
# on them.
_STOPWORDS = """
    about above after again against all also among and another any are around as at away back be because been before
    being below between both but by can could did does doing down during each either else ever every few for from
    further had has have having he her here hers him his how however if in into is it its itself just least less like
    made make many may me might more most much must my near neither never new next no nor not now of off often on once
    one only or other our ours out over own per perhaps put rather said says same saying see seen several she should
    since so some still such than that the their theirs them then there these they this those though three through
    thus to too two under until up upon us very was we well were what when where whether which while who whom whose
    why will with within without would yet you your first second last year years old day days week weeks month
    months today yesterday tonight morning afternoon evening night monday tuesday wednesday thursday friday saturday
    sunday january february march april june july august september october november december time times
    police officer officers department sheriff deputies spokesman spokeswoman spokesperson told according report
    reports reported news statement investigation investigating investigators detectives detective authorities
    shot shots shooting shootings gunfire gun guns fired killed killing dead death died dies injured injuries wounded
    wound wounds hospital condition victim victims suspect suspects man men woman women boy girl people person family
    say call called scene area home house street road avenue local county city state says told according
    update updated latest breaking remains remain remained stable critical serious condition life threatening
    stabbing stabbed stab knife fire fires blaze firefighters crews crash collision arrested arrest arrests charged
    charge charges custody bail court murder manslaughter attempted incident incidents attack attacked assault
    injury ambulance paramedics treated inquiries appeal witnesses information anyone contact cordon place public
    risk wider investigate continue continuing ongoing confirmed believed aged year-old outside inside across behind
    beside along toward towards taken take took came come went going got get later earlier left leaving
"""
# States and nations: two reports from one state share its name whatever they are about, and the place rules of
# clustering already weigh where each happened.
_REGIONS = """
    alabama alaska arizona arkansas california colorado connecticut delaware florida georgia hawaii idaho illinois
    indiana iowa kansas kentucky louisiana maine maryland massachusetts michigan minnesota mississippi missouri
    montana nebraska nevada hampshire jersey mexico york carolina dakota ohio oklahoma oregon pennsylvania rhode
    tennessee texas utah vermont virginia washington wisconsin wyoming ala ariz ark calif colo conn del fla ill ind
    kan kans mass mich minn miss mont neb nev okla ore tenn wash wis wisc wyo england scotland wales britain
"""
STOPWORDS = frozenset(_STOPWORDS.split()) | frozenset(_REGIONS.split())


# A word at least this share of one source's reports used is that site's furniture, once it has this many reports.
# (Measured on gva-dev: 0.3 dropped words of the places a local site covers, and lost more links than it saved;
# 0.5 and 0.4 gave the same figures.)
SITE_FURNITURE_SHARE = 0.4
SITE_MIN_REPORTS = 3


@dataclass(frozen=True)
class Frequencies:
    """Document frequencies: in how many reports each word occurred (a word not in `used`: none), of `reports`."""

    used: Mapping[str, int]
    reports: int


def counts(title: str, text: str) -> Counter[str]:
    """How often the title and the lead of the text use each word (lower case, stopwords and short words left out)."""
    lead = f"{title}\n{text[:LEAD_CHARS]}".lower()
    return Counter(word for word in _WORD.findall(lead) if len(word) > 2 and word not in STOPWORDS)


def site_furniture(found: Mapping[str, int], source: Frequencies) -> set[str]:
    """The words of `found` that at least `SITE_FURNITURE_SHARE` of a source's earlier reports used as well (once it
    has `SITE_MIN_REPORTS`): its site's page furniture."""
    if source.reports < SITE_MIN_REPORTS:
        return set()
    return {word for word in found if source.used.get(word, 0) >= SITE_FURNITURE_SHARE * source.reports}


def weighted(found: Counter[str], frequencies: Mapping[str, int], documents: int) -> dict[str, float]:
    """TF-IDF of `found` (sublinear term frequency, smoothed inverse document frequency), scaled to length 1.

    `frequencies`: in how many of `documents` reports each word occurred (a word not in it: none).
    """
    vector = {
        word: (1 + math.log(count)) * (1 + math.log((documents + 1) / (frequencies.get(word, 0) + 1)))
        for word, count in found.items()
    }
    return _unit(vector)


# A word at most this share of all reports used (and at least in `RARE_MIN_REPORTS`) is rare. Two reports sharing
# several rare names are about the same people or venue, however far apart in time. Not names: the words most of one
# source's reports use (a station's call sign; a site with two or three reports is too small for `site_furniture`,
# yet its name is rare), nor numbers (tip lines, street numbers: `_NAME` reads letters only).
RARE_SHARE = 0.005
RARE_MIN_REPORTS = 3
_SOURCE_NAME_SHARE = 0.5
# A capitalised word that does not start a sentence (or a quote, or a headline's clause): a name.
_NAME = re.compile(r"(?<![.!?:;\"“‘(\[—–-])(?<![.!?:;\"“‘(\[—–-]\s)(?<=\S\s)[A-Z][a-z'’-]*[a-z]")


def names(text: str) -> frozenset[str]:
    """The words the lead of `text` writes as names, lower case: "Derrick Stafford", "Vice Lords", "Pigtown"."""
    return frozenset(m.group().lower() for m in _NAME.finditer(text[:LEAD_CHARS]))


def rare_names(found: Mapping[str, int], text: str, everywhere: Frequencies, source: Frequencies) -> frozenset[str]:
    """The words of `found` that `text` writes as names, that few of all reports used (`everywhere`), and that
    fewer than half of the same source's earlier reports used (`source`, once it has two)."""
    most = max(RARE_MIN_REPORTS, RARE_SHARE * everywhere.reports)
    return frozenset(
        word for word in found.keys() & names(text)
        if everywhere.used.get(word, 0) <= most
        and (source.reports < 2 or source.used.get(word, 0) < _SOURCE_NAME_SHARE * source.reports)
    )


def cosine(a: Mapping[str, float], b: Mapping[str, float], norm_a: float | None = None,
           norm_b: float | None = None) -> float:
    """The cosine of two vectors of word weights (0 when either is empty, or they share no word). `norm_a`, `norm_b`:
    their `norm`s when known already (one report is compared with many incidents, one incident with many reports)."""
    if len(a) > len(b):
        a, b, norm_a, norm_b = b, a, norm_b, norm_a
    # Only the words both have add to the dot product (the others add 0.0, which leaves a float sum as it is), and
    # most candidates share none: then the norms are not worth computing.
    if a.keys().isdisjoint(b.keys()):
        return 0.0
    dot = sum([weight * b[word] for word, weight in a.items() if word in b])
    if not dot:
        return 0.0
    norms = (norm(a) if norm_a is None else norm_a) * (norm(b) if norm_b is None else norm_b)
    return dot / norms if norms else 0.0


def norm(vector: Mapping[str, float]) -> float:
    """The length of a vector of word weights."""
    return math.sqrt(sum([weight * weight for weight in vector.values()]))


def shared(a: Mapping[str, float], b: Mapping[str, float], top: int = 4) -> list[str]:
    """The words two vectors share, the most weighted first: what a clustering reason names."""
    return [word for _, word in sorted([(-(a[word] * b[word]), word) for word in a.keys() & b.keys()])[:top]]


def with_report(profile: Mapping[str, float], report: Mapping[str, float]) -> dict[str, float]:
    """An incident's words after one more report: the sum of its reports' vectors, the `PROFILE_TERMS` heaviest."""
    summed = Counter(profile)
    summed.update(report)
    heaviest = sorted(summed.items(), key=lambda item: (-item[1], item[0]))[:PROFILE_TERMS]
    return {word: round(weight, 4) for word, weight in heaviest}


def _unit(vector: dict[str, float]) -> dict[str, float]:
    length = norm(vector)
    return {word: weight / length for word, weight in vector.items()} if length else {}
