"""What a revision changed, and whether it changed facts (design §2.2): pure functions, no I/O.

This module compares two versions' sentences (read by `services.dedup.sentences`), lists the difference and weighs
it with fact signals; it does no sentence splitting or folding of its own.

Contract: `classify_revision(old_title, old_text, new_title, new_text)` compares two content versions of one feed
entry and returns a `Revision`:

- `added` / `removed`: the sentences of one version that the other lacks (the title counts as one), as written, in
  their version's order. Sentences are compared by key (`services.dedup.sentences`), after folding case, whitespace,
  typographic quotes and dashes, punctuation and links, so a sentence that changed only in those is neither added nor
  removed. Boilerplate lines ("Read more", "Share this article", "Sign up to our newsletter", "Updated: 10:32",
  copyright lines, bylines) and a title's labels ("LIVE:", "| Site name") are dropped before comparing and are never
  listed. The diff is compact: at most `MAX_LISTED` sentences each way, each cut to `MAX_SENTENCE_CHARS` characters
  (ending in "…").
- `kind`: `factual` when, between the versions (title and text together, boilerplate and links dropped), any of
  these differ: numbers (digits, number words, ordinals, ages, times), condition / casualty / legal / investigation /
  scene / incident words, negations ("no arrests" → "two arrests"), quoted speech, places, names (capitalised words
  not starting a sentence), or what the tracker's extractor (`services.tracker.extract.extract`) reads from it. Else
  `factual` when a sentence added to the text uses a content word the old version never used. Else `cosmetic`.
- `reason`: one short human line naming what decided (at most two signals), e.g. "numbers changed: 2 → 3".

Why lean to factual: a revision wrongly called cosmetic loses a fact, because the tracker never sees it; one wrongly
called factual costs only a re-extraction that changes nothing. The deliberate exception is the title: outlets reword
titles all the time, so a new title that trips no fact signal is a cosmetic retitle even when its words are new.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from schemas import RevisionKind
from services.dedup.sentences import Sentence, fold, remove_links, sentences_of, tokens
from services.tracker import patterns as p
from services.tracker.extract import extract
from services.tracker.facts import Facts

MAX_LISTED = 8
MAX_SENTENCE_CHARS = 240
_MAX_NAMED = 3  # items one signal names in the reason
_MAX_ITEM_CHARS = 40


@dataclass(frozen=True)
class Revision:
    """A revision's compact diff and its classification (see the module docstring for the contract)."""

    kind: RevisionKind
    added: tuple[str, ...]  # sentences of the new version (the title one of them) the old lacks, as written
    removed: tuple[str, ...]  # sentences of the old version the new lacks, as written
    reason: str  # one short line: "numbers changed: 2 → 3", "retitled with the same facts"


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


# --- fact signals ----------------------------------------------------------------------------------------------------


def _pooled(sentences: Sequence[Sentence]) -> str:
    """Every sentence's comparison key, one a line: phrases never match across sentences."""
    return "\n".join(s.key for s in sentences)


_NUMBER_WORDS = {**{w: str(n) for w, n in p.NUMBER_WORDS.items()}, "a dozen": "12", "dozens": "dozens",
                 "hundred": "hundred", "hundreds": "hundreds", "thousand": "thousand", "thousands": "thousands",
                 "several": "several", "a number of": "a number of", "a handful of": "a handful of"}
_ORDINAL_SUFFIX = {1: "st", 2: "nd", 3: "rd"}
_NUMBER = re.compile(
    r"(?<![\w.])(?P<n>\d+(?:\.\d+)?)(?: ?(?P<time>[ap] ?m)| ?(?P<ord>st|nd|rd|th))?(?!\w)|"
    rf"(?<!no )\b(?P<word>{'|'.join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True))})\b|"
    rf"\b(?P<ordword>{p.ORD})\b"
)


# A version compared as the new one of a revision is compared again as the old one of the next: what is read of the
# last few is kept. (It is only read, never changed.)
_per_version = lru_cache(maxsize=512)


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else _ORDINAL_SUFFIX.get(n % 10, 'th')}"


@_per_version
def _numbers(pooled: str) -> frozenset[str]:
    """Every number stated, as a canonical string: "two" and "2" are "2", "second" is "2nd", "10:32pm" is "10.32pm"."""
    found: set[str] = set()
    for m in _NUMBER.finditer(pooled):
        if m["n"]:
            found.add(m["n"] + (m["ord"] or m["time"] or "").replace(" ", ""))
        elif m["word"]:
            found.add(_NUMBER_WORDS[m["word"]])
        else:
            found.add(_ordinal(p.ORDINALS[m["ordword"]]))
    return frozenset(found)


# (family, label, pattern) over comparison keys (lower case, words and numbers only). Ordered: an earlier match
# hides later ones in its span, so a negated or qualified phrase beats the bare word in it ("not life threatening"
# beats "life threatening").
_FACT_WORDS: tuple[tuple[str, str, str], ...] = (
    ("condition", "not life-threatening", r"(?:non|not|no longer)(?: (?:thought|believed|considered|said|understood|"
                                          r"deemed|described|to|be|as|now|currently|being))* life threatening"),
    ("condition", "not life-changing", r"(?:non|not)(?: (?:thought|believed|considered|expected|to|be))* "
                                       r"life chang\w*"),
    ("condition", "not critical", r"(?:no longer|not)(?: in a)? critical"),
    ("condition", "not serious", r"not(?: (?:thought|believed|considered|to|be|in a))* serious(?:ly)?"),
    ("condition", "critical", r"critical(?:ly)?|life threatening|fighting for (?:his|her|their) li(?:fe|ves)"),
    ("condition", "life-changing", r"life chang(?:ing|ed)"),
    ("condition", "serious", r"serious(?:ly)?"),
    ("condition", "stable", r"stable|comfortable"),
    ("condition", "minor injuries", r"(?:minor|slight)(?:ly)? (?:injur(?:y|ies|ed)|hurt)|walking wounded"),
    ("condition", "discharged", r"(?:discharged|released|allowed home) from hospital|discharged"),
    ("casualty", "dead", r"pronounced dead|declared dead|died|dies|dead|deaths?|killed|fatal(?:ly)?|passed away|"
                         r"lost (?:his|her|their) li(?:fe|ves)|body|bodies"),
    ("casualty", "injured", r"injur(?:ed|y|ies)|hurt|wounded|wounds?"),
    ("casualty", "in hospital", r"hospitali[sz]ed|hospitals?"),
    ("legal", "no arrests", r"no arrests?(?: (?:have|has|had))?(?: yet)?(?: been)?(?: made)?|"
                            r"(?:no one|nobody) (?:has|had|was) (?:yet )?(?:been )?arrested"),
    ("legal", "arrested", r"arrest(?:s|ed|ing)?|detained|custody"),
    ("legal", "charged", r"charged|charges?|charging"),
    ("legal", "released", r"released(?: (?:on|under|without) \w+)?|bail(?:ed)?|no further action|freed"),
    ("legal", "remanded", r"remanded"),
    ("legal", "court", r"court|magistrates|pleaded|guilty|convicted|sentenced|jailed"),
    ("legal", "suspect", r"suspects?|suspicion|wanted"),
    ("investigation", "IOPC", r"iopc|independent office for police conduct|police watchdog|watchdog"),
    ("investigation", "investigation", r"investigat(?:ion|ions|ing|ors?|e|ed)|inquiry|inquiries|probe"),
    ("investigation", "inquest", r"inquest|coroner"),
    ("investigation", "misconduct", r"misconduct|suspended|restricted duties"),
    ("investigation", "murder", r"murder|manslaughter"),
    ("scene", "cordon lifted", r"cordons?\b[^\n]{0,80}?\b(?:lifted|removed|stood down|taken down)|"
                               r"(?:lifted|removed) (?:the |a )?(?:police )?cordons?|re ?opened"),
    ("scene", "cordon", r"cordons?|cordoned(?: off)?|closed|closures?"),
    ("scene", "no risk", r"no (?:(?:wider|ongoing|further|continuing|immediate|known) )*(?:risk|threat|danger)|"
                         r"not (?:(?:believed|thought|considered|to|be|an?|any) )*(?:(?:wider|ongoing|further) )*"
                         r"(?:risk|threat|danger)|not looking for anyone else|isolated incident"),
    ("scene", "risk", r"risk|threat|danger|avoid the area|stay away|at large"),
    ("scene", "evacuated", r"evacuat(?:ed|ion|e)"),
    ("scene", "appeal", r"appeal(?:ing|ed|s)?|witness(?:es)?"),
    ("incident", "shooting", r"shot|shots|shoot(?:ing|ings)?|gun(?:s|man|men|fire|shots?)?|firearms?|opened fire"),
    ("incident", "stabbing", r"stab(?:bed|bing|bings|s)?|knife|knives|knifed|machete"),
    ("incident", "fire", r"fires?|blaze|arson|flames|firefighters?"),
    ("incident", "explosion", r"explo(?:sion|sions|ded|sive)|blast"),
    ("incident", "collision", r"collision|crash(?:ed|es)?"),
    ("incident", "missing", r"missing|last seen"),
    ("incident", "assault", r"assault(?:ed|s)?|attack(?:ed|s)?|punched|beaten"),
    ("incident", "terrorism", r"terror(?:ism|ist)?"),
)
_FACT_PATTERNS = tuple((family, label, re.compile(rf"\b(?:{pattern})\b")) for family, label, pattern in _FACT_WORDS)


@_per_version
def _fact_words(pooled: str) -> frozenset[tuple[str, str]]:
    """(family, label) of every fact word used."""
    found: set[tuple[str, str]] = set()
    for family, label, pattern in _FACT_PATTERNS:
        if p.search(pattern, pooled):  # most texts hold none of a pattern's words: looking for them is cheap
            found.add((family, label))
            pooled = pattern.sub(lambda m: " " * len(m.group()), pooled)
    return frozenset(found)


_NEGATION = re.compile(r"\b(?:not|no|never|nobody|none|without|cannot|non|(?:is|are|was|were|has|have|had|do|does|"
                       r"did|wo|would|ca|could|should)nt)\b(?: (?:one|longer|yet|any))*(?: \w+){0,2}")


@_per_version
def _negations(pooled: str) -> frozenset[str]:
    """Each negation with the two words after it: "no wider risk", "not life threatening"."""
    return frozenset(m.group() for m in _NEGATION.finditer(pooled))


# Double quotes, or single ones that are not apostrophes; at most 600 characters, so a stray mark costs little.
_QUOTED = re.compile(r"[\"“]([^\"“”]{1,600})[\"”]|(?<!\w)['‘]((?:[^'‘’]|(?<=\w)['’](?=\w)){1,600})['’](?!\w)")


def _quotes(sentences: Sequence[Sentence]) -> set[str]:
    """Quoted passages of two words or more (speech, not scare quotes), by comparison key."""
    joined = " ".join(unicodedata.normalize("NFKC", remove_links(s.written)) for s in sentences)
    found = set()
    for m in _QUOTED.finditer(joined):
        words = tokens(fold(m.group(1) or m.group(2)))
        if len(words) >= 2:
            found.add(" ".join(words))
    return found


_WORD = re.compile(r"[^\W\d_][\w']*")
# Capitalised words that name nobody: titles, attributions, news labels.
_NOT_NAMES = _words(
    "i mr mrs ms miss dr sir dame pc dc ds di dci det insp supt sgt ch chief superintendent inspector constable "
    "sergeant detective commander commissioner officer police met metropolitan live breaking update updated "
    "exclusive watch video pictured"
)


def _possessive(word: str) -> str:
    return re.sub(r"'s?$", "", word)


def _title_cased(sentence: str) -> bool:
    words = [w for w in _WORD.findall(sentence) if len(w) > 3]
    return len(words) >= 3 and sum(w[0].isupper() for w in words) >= 0.6 * len(words)


def _names(sentences: Sequence[Sentence]) -> list[str]:
    """Runs of capitalised words ("Jane Smith") that do not start a sentence, a quote or a clause after a colon,
    titles and labels left out ("Det Insp"). A title in title case names nothing (every word is capitalised)."""
    found: list[str] = []
    for s in sentences:
        if s.title and _title_cased(s.clean):
            continue
        run: list[str] = []
        previous_end = -1
        for i, m in enumerate(_WORD.finditer(s.clean)):
            before = s.clean[max(0, m.start() - 2) : m.start()].rstrip()  # whitespace is single spaces
            word = _possessive(m.group())
            name = (i > 0 and word[0].isupper() and word.casefold() not in _NOT_NAMES
                    and before[-1:] not in {'"', "'", ":", "(", "[", ".", "!", "?", "-"})
            if run and (not name or s.clean[previous_end : m.start()] != " "):
                found.append(" ".join(run))
                run = []
            if name:
                run.append(word)
                previous_end = m.end()
        if run:
            found.append(" ".join(run))
    return found


def _vocabulary(sentences: Sequence[Sentence]) -> set[str]:
    """Every word a version uses, folded, possessives dropped."""
    return {_possessive(w).casefold() for s in sentences for w in _WORD.findall(s.clean)}


def _facts_view(facts: Facts) -> dict[str, str]:
    """What the tracker would read, as comparable strings (values, never snippets); places are a signal of their own."""
    view: dict[str, str] = {}
    if facts.category:
        view["category"] = facts.category.value
    if facts.location:
        location = facts.location.value
        view["location"] = ", ".join(part for part in (location.street, location.name) if part)
    for c in facts.casualties:
        view[f"role of {c.label}"] = c.role.value
        if c.condition:
            view[f"condition of {c.label}"] = c.condition.value
        if c.life_changing:
            view[f"life-changing for {c.label}"] = "yes" if c.life_changing.value else "no"
    for name in ("dead", "injured", "arrests", "charges", "cordon", "public_risk"):
        stated = getattr(facts, name)
        if stated is not None:
            view[name.replace("_", " ")] = str(stated.value)
    for inv in facts.investigations:
        view[f"{inv.body.value} investigation"] = f"{inv.kind.value}, {inv.status.value}"
    return view


# --- describing ------------------------------------------------------------------------------------------------------


def _items(values: Iterable[str]) -> str:
    listed = sorted(values, key=lambda v: (len(v), v))
    shown = [v if len(v) <= _MAX_ITEM_CHARS else v[: _MAX_ITEM_CHARS - 1] + "…" for v in listed[:_MAX_NAMED]]
    return ", ".join(shown) + (", …" if len(listed) > _MAX_NAMED else "")


def _set_change(what: str, old: Iterable[str], new: Iterable[str]) -> str | None:
    """ "numbers changed: 2 → 3", "places added: Leyton", "names removed: Smith"; None when equal."""
    added, removed = set(new) - set(old), set(old) - set(new)
    if added and removed:
        return f"{what} changed: {_items(removed)} → {_items(added)}"
    if added:
        return f"{what} added: {_items(added)}"
    if removed:
        return f"{what} removed: {_items(removed)}"
    return None


def _quote_change(old: set[str], new: set[str]) -> str | None:
    added, removed = new - old, old - new
    if added and removed:
        return "quote changed"
    if added or removed:
        return f"quote{'s' if len(added or removed) > 1 else ''} {'added' if added else 'removed'}"
    return None


def _missing(sentences: Sequence[Sentence], other: set[str]) -> list[Sentence]:
    """The sentences whose key `other` lacks, each key once, in order."""
    seen: set[str] = set()
    missing = []
    for s in sentences:
        if s.key not in other and s.key not in seen:
            seen.add(s.key)
            missing.append(s)
    return missing


def _listed(sentences: Sequence[Sentence]) -> tuple[str, ...]:
    cut = [s.written if len(s.written) <= MAX_SENTENCE_CHARS else s.written[: MAX_SENTENCE_CHARS - 1].rstrip() + "…"
           for s in sentences[:MAX_LISTED]]
    return tuple(cut)


# --- stemming, for the new-words fallback ----------------------------------------------------------------------------

_STOPWORDS = _words(
    "a about above after again against all also am an and any are around as at be because been before being below "
    "between both but by can could did do does doing down during each few for from further had has have having he her "
    "here hers him his how i if in into is it its itself just me more most my near no nor not now of off on once only "
    "or other our out over own same she should so some such than that the their them then there these they this those "
    "through to too under until up very was we were what when where which while who whom why will with would you your "
    "said says say told added according statement spokesperson spokesman spokeswoman confirmed reported report reports "
    "earlier later today yesterday tonight morning afternoon evening night latest news update updated"
)


def _stem(word: str) -> str:
    for suffix, replacement in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)] + replacement
    return word


def _content_stems(sentences: Iterable[Sentence]) -> dict[str, str]:
    """Stem → word for every content word (no number, no stopword, three letters or more)."""
    return {_stem(w): w for s in sentences for w in s.key.split()
            if len(w) >= 3 and not w[0].isdigit() and w not in _STOPWORDS}


def _extract(sentences: Sequence[Sentence]) -> Facts:
    """The tracker's reading of a version, boilerplate, links and title labels left out."""
    title = next((s.clean for s in sentences if s.title), "")
    return _read(title, "\n".join(s.clean for s in sentences if not s.title))


_read = _per_version(extract)


# --- entry point -----------------------------------------------------------------------------------------------------


def _surface_reason(old_title: str, old_text: str, new_title: str, new_text: str) -> str:
    """Why two versions whose sentences compare equal still differ."""
    def keys(title: str, text: str, **keep: bool) -> list[str]:
        return [s.key for s in sentences_of(title, text, **keep)]

    everything = {"links": True, "boilerplate": True}
    if keys(old_title, old_text, **everything) == keys(new_title, new_text, **everything):
        if (old_title, old_text) == (new_title, new_text):
            return "no change"
        return "only punctuation, casing or whitespace changed"
    if keys(old_title, old_text, boilerplate=True) == keys(new_title, new_text, boilerplate=True):
        return "only links changed"
    if keys(old_title, old_text, links=True) == keys(new_title, new_text, links=True):
        return "only boilerplate changed"
    return "only boilerplate and links changed"


def _signals(old: Sequence[Sentence], new: Sequence[Sentence]) -> Iterator[str | None]:
    """Each fact signal's description of what differs between two versions, None where it sees no difference."""
    old_pool, new_pool = _pooled(old), _pooled(new)
    yield _set_change("numbers", _numbers(old_pool), _numbers(new_pool))
    old_fact_words, new_fact_words = _fact_words(old_pool), _fact_words(new_pool)
    for family in dict.fromkeys(family for family, _, _ in _FACT_WORDS):
        yield _set_change(f"{family} words", {label for f, label in old_fact_words if f == family},
                          {label for f, label in new_fact_words if f == family})
    yield _set_change("negation", _negations(old_pool), _negations(new_pool))
    yield _quote_change(_quotes(old), _quotes(new))

    old_facts, new_facts = _extract(old), _extract(new)
    yield _set_change("places", {n.title() for n in old_facts.places}, {n.title() for n in new_facts.places})
    # A name counts as added only when the other version never used one of its words, in any case or position; a
    # place's words were counted as places.
    place_words = {w for name in old_facts.places | new_facts.places for w in name.split()}

    def unknown(name: str, words: set[str]) -> bool:
        return any(w not in words and w not in place_words for w in name.casefold().split())

    old_words, new_words = _vocabulary(old), _vocabulary(new)
    yield _set_change("names", {name for name in _names(old) if unknown(name, new_words)},
                      {name for name in _names(new) if unknown(name, old_words)})
    old_view, new_view = _facts_view(old_facts), _facts_view(new_facts)
    for field in dict.fromkeys([*old_view, *new_view]):
        if old_view.get(field) != new_view.get(field):
            yield f"{field}: {old_view.get(field, '—')} → {new_view.get(field, '—')}"


# A verdict that conflicts with a concurrent one is judged again (services.dedup.stage): so is its revision.
@lru_cache(maxsize=256)
def classify_revision(old_title: str, old_text: str, new_title: str, new_text: str) -> Revision:
    """What changed between two versions of one entry, and whether it is `factual` or `cosmetic` (see the module
    docstring for the contract)."""
    old, new = sentences_of(old_title, old_text), sentences_of(new_title, new_text)
    old_keys, new_keys = {s.key for s in old}, {s.key for s in new}
    added, removed = _missing(new, old_keys), _missing(old, new_keys)
    diff = _listed(added), _listed(removed)
    if [s.key for s in old] == [s.key for s in new]:
        return Revision(RevisionKind.cosmetic, *diff, _surface_reason(old_title, old_text, new_title, new_text))

    # The reason names two signals, and one is enough to call the revision factual: the extractor, the dearest
    # signal, runs only when the cheap ones leave room.
    fired = list(islice(filter(None, _signals(old, new)), 2))
    if not fired:
        # Leaning to factual (module docstring): new wording in the text may carry a fact no signal knows.
        old_stems = _content_stems(old)
        fresh = {w for stem, w in _content_stems(s for s in added if not s.title).items() if stem not in old_stems}
        if fresh:
            fired.append(f"new words in text: {_items(fresh)}")
    if fired:
        return Revision(RevisionKind.factual, *diff, "; ".join(fired))

    retitled = any(s.title for s in added) or any(s.title for s in removed)
    text_changed = any(not s.title for s in added) or any(not s.title for s in removed)
    if not added and not removed:
        reason = "sentences reordered"
    elif retitled and not text_changed:
        reason = "retitled with the same facts"
    elif not any(not s.title for s in added):
        reason = f"{'retitled; ' if retitled else ''}sentences removed with no facts in them"
    else:
        reason = f"{'retitled and ' if retitled else ''}reworded with the same facts"
    return Revision(RevisionKind.cosmetic, *diff, reason)
