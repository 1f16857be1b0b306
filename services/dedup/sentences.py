"""A version of an entry as comparable sentences (design §2.2): pure functions, no I/O.

Contract: `sentences_of(title, text)` returns the title (when not blank) then the text's sentences, each as a
`Sentence` carrying what it says three ways: as written, cleaned (what fact signals read) and as a comparison key
(what decides whether two sentences are the same). Two sentences that differ only in case, whitespace, typographic
quotes and dashes, punctuation, thousands commas or links have the same key. Boilerplate lines ("Read more", "Share
this article", "Sign up to our newsletter", "Updated: 10:32", copyright lines, bylines) and a title's labels ("LIVE:",
"| Site name") are dropped unless the caller asks to keep them.

`split_sentences` breaks text at sentence ends, but not after news abbreviations ("Mr.", "Det. Insp.", "No. 10"),
initials ("J. K. Smith", "U.S.") or "a.m." before a day, month or time zone; a line break always ends a sentence.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

# --- folding ---------------------------------------------------------------------------------------------------------

_SPACE = re.compile(r"\s+")
_URL = re.compile(r"(?:\bhttps?://|\bwww\.)\S+", re.I)
_TYPOGRAPHIC = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'", "\u201c": '"', "\u201d": '"',
    "\u201e": '"', "\u201f": '"', "\u2033": '"', "\u00ab": '"', "\u00bb": '"', "\u2010": "-", "\u2011": "-",
    "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2212": "-",
})
# Labels and site names around a title: "LIVE: …", "… | East London Echo", "… (updated)".
_TITLE_LABEL = re.compile(r"^(?:(?:live|breaking(?: news)?|updated?|latest|watch|exclusive|pictured|video|"
                          r"in pictures)(?:\s*[:|]|\s+-)\s*)+|\s+\|\s+[^|]{2,60}$|"
                          r"\s*[(\[](?:updated?|video|pictures|live)[)\]]", re.I)


def fold(text: str) -> str:
    """`text` Unicode-normalised (NFKC), typographic quotes and dashes made plain ASCII ones, whitespace collapsed to
    single spaces and stripped."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).translate(_TYPOGRAPHIC)).strip()


def remove_links(text: str) -> str:
    """`text` with every link ("https://…", "www.…", up to the next whitespace) replaced by one space."""
    return _URL.sub(" ", text)


# --- splitting -------------------------------------------------------------------------------------------------------


def _words(block: str) -> frozenset[str]:
    return frozenset(block.split())


_LINE = re.compile(r"\s*\n\s*")
# A sentence may end at . ! ? (perhaps inside closing quotes or brackets) before a capital, a digit or an opening quote.
_BREAK = re.compile(r"[.!?…]+[\"')\]’”]*\s+(?=[\"'(\[“‘]?[A-Z0-9])")
# Words whose full stop ends no sentence: "Mr. Smith", "St. Mary's", "Det. Insp. Jones".
_ABBREVIATIONS = _words(
    "Mr Mrs Ms Dr St Rd Ave Prof Rev Gen Lt Col Capt Sgt Insp Det Supt Cllr Jr Sr Gov Sen Rep Hon Jan Feb Mar Apr Jun "
    "Jul Aug Sep Sept Oct Nov Dec vs approx"
)
# After "a.m." a sentence goes on only when a day, month or time zone follows ("at 9 a.m. Friday").
_AFTER_TIME = re.compile(r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun|Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec|BST|GMT|"
                         r"UTC|ET|EST|EDT|PT|PST|CET)")


def _continues(text: str, start: int, end: int) -> bool:
    """Whether the break candidate `text[start:end]` follows an abbreviation or an initial, not a sentence's end."""
    if text[start] != ".":
        return False
    last = re.search(r"[^\s\"'(\[“‘]*$", text[max(0, start - 40) : start])
    word = last.group() if last else ""
    if word in _ABBREVIATIONS or re.fullmatch(r"[A-Z]", word):
        return True
    if word == "No":  # "No. 10"
        return text[end : end + 1].isdigit()
    if re.fullmatch(r"(?:[A-Za-z]\.)+[A-Za-z]", word):  # "U.S.", "a.m."
        return word.lower() not in {"a.m", "p.m"} or _AFTER_TIME.match(text, end) is not None
    return False


def split_sentences(text: str) -> list[str]:
    """The sentences of `text` in order, as written but with whitespace collapsed, none empty. A line break always
    ends one, so headings stay apart; see the module docstring for the breaks that are not sentence ends."""
    sentences: list[str] = []
    for line in _LINE.split(text):
        start = 0
        for m in _BREAK.finditer(line):
            if not _continues(line, m.start(), m.end()):
                sentences.append(line[start : m.end()])
                start = m.end()
        sentences.append(line[start:])
    return [s for s in (_SPACE.sub(" ", s).strip() for s in sentences) if s]


# --- boilerplate -----------------------------------------------------------------------------------------------------

_STAMP_WORD = (
    r"(?:\d{1,2}(?:[.:]\d{2})?\s*[ap]\.?m\.?|\d{1,4}(?:st|nd|rd|th)?|bst|gmt|utc|cet|cest|est|edt|pst|"
    r"et|on|at|by|an?|and|ago|just|now|today|yesterday|minutes?|mins?|hours?|hrs?|days?|"
    r"jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sept?(?:ember)?|oct(?:ober)?|"
    r"nov(?:ember)?|dec(?:ember)?|mon(?:day)?|tue(?:s|sday)?|wed(?:nesday)?|thu(?:rs|rsday)?|fri(?:day)?|"
    r"sat(?:urday)?|sun(?:day)?)"
)
# "Updated: 10:32", "Last updated 24 October 2025, 10:32 BST", "Update, Saturday 25 October:", "24/10/2025 10:32":
# a time stamp and nothing else on the line ("Update: a man has been arrested" is news). Without the leading word,
# the line must hold a time, a month or a year: "Friday" or "12" alone may answer a question.
_STAMP = re.compile(rf"((?:(?:last|first)\s+)?(?:updated?|published|posted|modified)\b[\s:,-]*)?(?:{_STAMP_WORD}"
                    r"(?!\w)[\s,./:-]*)*", re.I)
_STAMP_EVIDENCE = re.compile(r"\d[.:]\d\d|\d\s*[ap]\.?m\b|\b(?:19|20)\d\d\b|"
                             r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", re.I)
_BOILERPLATE = re.compile(
    r"(?:read|see|watch|listen)\s+(?:more|also|next)\b.*|(?:also\s+read|more\s+on\s+this\s+story|recommended|"
    r"related(?:\s+(?:stories|articles|content|topics|links))?|most\s+read|top\s+stories)(?:\s*:.*)?|"
    r"sign\s+up\b.*|subscribe\b.*|"
    r"get\s+(?:our|the)\b.*\bnewsletters?\b.*|share\s+(?:this|on|via)\b.*|share|tweet|email|print|copy\s+link|"
    r"comments?|advertisement|skip\s+advert.*|follow\s+us\b.*|click\s+here\b.*|listen\s+to\s+this\s+article.*|"
    r"image\s+(?:caption|source|copyright)\b.*|getty\s+images|pa\s+media|reuters|shutterstock|"
    r"(?:additional\s+)?reporting\s+by\b.*|editing\s+by\b.*|(?:©|\(c\)|copyright\b).*|all\s+rights\s+reserved|"
    r"(?:have\s+you\s+been\s+affected|got\s+a\s+story|do\s+you\s+have\s+a\s+story)\b.*",
    re.I,
)
_BYLINE = re.compile(r"By\s+(?:(?:an?|our|the)\s+)?(?:[A-Z][\w'.-]*,?\s*){1,6}"
                     r"(?:(?:and|&)\s+(?:[A-Z][\w'.-]*\s*){1,4})?(?:reporters?|correspondents?|staff|editor|writer)?")
_BOILERPLATE_WORDS = 15  # longer lines say something, whatever they start with


def _boilerplate(sentence: str) -> bool:
    bare = sentence.strip().rstrip(".:!|").strip()
    if not bare:
        return True
    if len(bare.split()) > _BOILERPLATE_WORDS:
        return False
    stamp = _STAMP.fullmatch(bare)
    if stamp and (stamp.group(1) or _STAMP_EVIDENCE.search(bare)):
        return True
    return any(pattern.fullmatch(bare) for pattern in (_BYLINE, _BOILERPLATE))


# --- comparison keys -------------------------------------------------------------------------------------------------

_TOKEN = re.compile(r"\d+(?:[.:]\d+)*|[^\W\d_]+")


def tokens(clean: str) -> list[str]:
    """The words and numbers of `clean` (folded text) in order, case-folded; thousands commas ("1,000" is "1000") and
    apostrophes inside words dropped, every other mark a separator, a colon in a number a full stop ("10:32" is
    "10.32")."""
    text = re.sub(r"(?<=\d),(?=\d{3}\b)", "", clean.casefold())
    text = re.sub(r"(?<=\w)'(?=\w)", "", text)
    return [t.replace(":", ".") for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class Sentence:
    """One sentence of a version (the title is one), three ways."""

    written: str  # as written, whitespace collapsed
    clean: str  # folded, links (and a title's labels) removed: what the signals read
    key: str  # its tokens, space-separated: what the comparison reads
    title: bool


def sentences_of(title: str, text: str, *, links: bool = False, boilerplate: bool = False) -> list[Sentence]:
    """The title (unless blank) then the text's sentences, in order. Links, boilerplate lines and a title's labels
    are dropped unless `links` / `boilerplate` ask to keep them (for naming a surface change); a sentence left with no
    word or number is dropped."""
    found: list[Sentence] = []
    raw = [(s, False) for s in split_sentences(text)]
    if title.strip():
        raw.insert(0, (_SPACE.sub(" ", title).strip(), True))
    for written, is_title in raw:
        clean = fold(written if links else remove_links(written))
        if is_title and not boilerplate:
            clean = _TITLE_LABEL.sub("", clean).strip()
        if not boilerplate and _boilerplate(clean):
            continue
        key = " ".join(tokens(clean))
        if key:
            found.append(Sentence(written, _SPACE.sub(" ", clean).strip(), key, is_title))
    return found
