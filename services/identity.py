"""Entry identity and content version (design.md §2, items 1 and 2), and the signs that a feed's GUIDs cannot name
its entries: pure functions, no I/O."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from schemas import FeedEntry

# Query parameters that say how a reader arrived, not which page it is: dropped whatever their value.
_TRACKING_PARAMS = frozenset(
    {
        # ad and social click ids: Meta, Google Ads, Microsoft, X, TikTok, LinkedIn, Yandex, Instagram
        "fbclid", "gclid", "gclsrc", "dclid", "gbraid", "wbraid", "msclkid", "twclid", "ttclid", "li_fat_id",
        "yclid", "igshid", "igsh", "srsltid",
        # analytics: Google Analytics cross-domain linker, Adobe (s_cid campaign, s_kwcid, ef_id), Marketo, Omeda
        "_ga", "_gl", "s_cid", "s_kwcid", "ef_id", "mkt_tok", "oly_enc_id", "oly_anon_id",
        # publishers' campaign codes: MSN/Yahoo (ocid, ncid), Guardian (CMP), internal campaigns (icid, cmpid),
        # NYT share medium (smid, smtyp), Daily Mail (ito), AT Internet/Xiti (xtor, as in `?xtor=RSS-3208`)
        "ocid", "ncid", "cmp", "cmpid", "icid", "smid", "smtyp", "ito", "xtor",
        # X/Twitter embeds: the page that embedded the link
        "ref_src", "ref_url",
        # AMP viewers: Google's search cache adds it (the `amp_` prefix below covers amp_js_v, amp_gsa, …)
        "usqp",
    }
)
# Whole families: utm_* (Google), at_* (AT Internet), ns_* (comScore, on BBC links), _hs* (HubSpot),
# mc_* (Mailchimp: mc_cid, mc_eid, mc_tc), fb_* (Facebook share dialogs), wt.* (Webtrends), mtm_*/pk_* (Matomo),
# amp_* (the AMP runtime and viewers).
_TRACKING_PREFIXES = ("utm_", "at_", "ns_", "_hs", "mc_", "fb_", "wt.", "mtm_", "pk_", "amp_")
# Names some sites use for content (GitHub's `?ref=main`, an article reference, a share token), dropped only when
# the value names a channel: `?ref=rss`, `?share=twitter`, `?ref=hn`. The value's first word decides (`ref=rss_feed`).
_CHANNEL_PARAMS = frozenset({"ref", "share"})
_CHANNELS = frozenset(
    {
        "rss", "atom", "feed", "feeds", "feedly", "feedburner", "newsletter", "email", "mail", "push", "social",
        "share", "twitter", "tw", "facebook", "fb", "linkedin", "whatsapp", "telegram", "reddit", "hn", "homepage",
        "home", "frontpage", "nav", "sidebar", "related", "widget",
    }
)
# Flags whose presence marks a variant of the same page, not another page: `?amp`, `?amp=1`, `?rss=1`, `?share=1`.
_FLAG_PARAMS = frozenset({"amp", "rss", "share"})
_FLAG_VALUES = frozenset({"", "1", "true", "yes", "on"})
_FIRST_WORD = re.compile(r"[a-z0-9]+")

# AMP caches serve an origin page under a path that spells the origin: `/c/s/www.example.com/path` (Google AMP
# cache, `s/` for https) and `https://www.google.com/amp/s/www.example.com/path` (Google's AMP viewer).
_AMP_CACHE_HOST = re.compile(r"(?:[a-z0-9-]+\.)?cdn\.ampproject\.org")
_AMP_CACHE_PATH = re.compile(r"/(?:c|v|wp)/(s/)?([^/]+)(/.*)?", re.DOTALL)
_AMP_VIEWER_HOST = re.compile(r"(?:www\.)?google\.[a-z]{2,3}(?:\.[a-z]{2})?")
_AMP_VIEWER_PATH = re.compile(r"/amp/(s/)?([^/]+)(/.*)?", re.DOTALL)
_AMP_SUFFIX = re.compile(r"\.amp(?=\.html?$|$)", re.IGNORECASE)

_SPACE = re.compile(r"\s+")
# Typographic variants that outlets swap freely; folded so a quote-style edit is not a new version.
_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def _digest(text: str, length: int = 32) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _is_tracking(name: str, value: str) -> bool:
    lowered, value = name.lower(), value.strip().lower()
    if lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES):
        return True
    if lowered in _FLAG_PARAMS and value in _FLAG_VALUES:
        return True
    if lowered == "outputtype":  # Washington Post and others: `?outputType=amp`
        return value == "amp"
    if lowered in _CHANNEL_PARAMS:
        first = _FIRST_WORD.match(value)
        return first is not None and first.group() in _CHANNELS
    return False


def _amp_origin(parts: SplitResult) -> SplitResult:
    """The origin URL of a page served by an AMP cache or viewer; any other URL as it is."""
    host = (parts.hostname or "").lower()
    if _AMP_CACHE_HOST.fullmatch(host):
        spelled = _AMP_CACHE_PATH.fullmatch(parts.path)
    elif _AMP_VIEWER_HOST.fullmatch(host):
        spelled = _AMP_VIEWER_PATH.fullmatch(parts.path)
    else:
        return parts
    if spelled is None:
        return parts
    secure, origin_host, path = spelled.groups()
    return SplitResult("https" if secure else "http", origin_host, path or "/", parts.query, parts.fragment)


def _bare_host(host: str) -> str:
    """The host without `www.` and AMP's `amp.`/`amp-` prefix (`amp.theguardian.com` is theguardian.com)."""
    host = host.removeprefix("www.")
    for prefix in ("amp.", "amp-"):
        rest = host.removeprefix(prefix)
        if rest != host and "." in rest:  # `amp.com` stays itself
            host = rest.removeprefix("www.")
    return host


def _bare_path(path: str) -> str:
    """The path without AMP's marks: an `amp` segment (`/news/amp/123`, `/story/amp/`) or an `.amp` suffix."""
    segments = [s for s in re.sub(r"/{2,}", "/", path).split("/") if s.lower() != "amp"] or [""]
    segments[-1] = _AMP_SUFFIX.sub("", segments[-1])  # story.amp.html → story.html, story.amp → story
    return "/".join(segments).rstrip("/") or "/"


# Pure and called several times per entry per document (naming, detection): recent links are remembered.
@lru_cache(maxsize=8192)
def canonical_link(url: str) -> str:
    """The link with case, `www.`, default ports, fragments, trailing slashes, tracking parameters and AMP removed.

    Two links that differ only in those ways name the same page and get the same canonical form. Every other query
    parameter is kept (sorted): `?p=123`, `?id=`, `?story=` name different pages. AMP variants are the AMP page of
    an article (`/amp` segment, `.amp`/`.amp.html`, `amp.`/`amp-` host, `?amp`, `?amp=1`, `?outputType=amp`) or
    a copy served by Google's AMP cache or viewer, which stand for the origin URL they spell.
    """
    try:
        parts = _amp_origin(urlsplit(url.strip()))
        port = parts.port
    except ValueError:  # `http://[::1/`, `http://x.org:port/`: garbage from a feed names nothing else
        return url.strip()
    scheme = parts.scheme.lower() or "http"
    host = _bare_host((parts.hostname or "").lower())
    if port and (scheme, port) not in {("http", 80), ("https", 443)}:
        host = f"{host}:{port}"
    path = _bare_path(parts.path)
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k, v))
    # http and https of one page are one page: the identity ignores the scheme.
    return urlunsplit(("https" if scheme in {"http", "https"} else scheme, host, path, urlencode(query), ""))


def normalise_text(text: str) -> str:
    """Text folded for comparison: Unicode-normalised, typographic variants folded, lower case, single spaces."""
    # ASCII is already NFKC and has nothing to fold: the common case skips both passes.
    folded = text.lower() if text.isascii() else unicodedata.normalize("NFKC", text).translate(_FOLD).lower()
    return " ".join(folded.split())  # str.split's whitespace is exactly regex \s, and it is several times faster


def _guid(entry: FeedEntry) -> str | None:
    return entry.guid.strip() if entry.guid and entry.guid.strip() else None


def _link(entry: FeedEntry) -> str | None:
    return canonical_link(entry.link) if entry.link and entry.link.strip() else None


def entry_guid(entry: FeedEntry, *, guid_reliable: bool = True) -> str:
    """The entry's name within its feed: its GUID, else its canonical link, else a hash of its title.

    In a feed whose GUIDs are unreliable (`guid_reliable=False`) the canonical link comes first; an entry without a
    link keeps its GUID.
    """
    guid, link = _guid(entry), _link(entry)
    if guid and (guid_reliable or not link):
        return guid
    if link:
        return link
    return "title:" + _digest(normalise_text(entry.title), 16)


def entry_identity(source_id: str, entry: FeedEntry, *, guid_reliable: bool = True) -> str:
    """Which feed entry this is, across polls and edits: `source_id` + the entry's name (`entry_guid`, design §2.1)."""
    return f"{source_id}|{entry_guid(entry, guid_reliable=guid_reliable)}"


def _guids_by_link(entries: Sequence[FeedEntry]) -> dict[str, set[str]]:
    """Canonical link → the distinct GUIDs (or "" for none) under which this document shows it."""
    shown: dict[str, set[str]] = defaultdict(set)
    for entry in entries:
        if (link := _link(entry)) is not None:
            shown[link].add(_guid(entry) or "")
    return shown


def _single(shown: dict[str, set[str]]) -> dict[str, set[str]]:
    """The links of `shown` that one GUID (or none) carries."""
    return {link: guids for link, guids in shown.items() if len(guids) == 1}


def guid_trouble(entries: Sequence[FeedEntry], links: Mapping[str, str], known: Collection[str]) -> str | None:
    """Why this feed's GUIDs cannot name its entries (a one-line reason), or None while nothing says so.

    `links` maps canonical links to the GUID each was last seen under in the feed's earlier documents (or `SHARED`);
    `known` holds the GUIDs the feed has published before. Two signs, either enough:
    - `duplicate`: one GUID names different entries in one document (different canonical links or, when none of
      them has a link, different titles). A GUID repeated with the same link is one entry shown twice.
    - `changed`: an entry's GUID is new, but its link was last seen under another GUID that this document no longer
      shows: the GUID changed with an edit. A link several GUIDs share, in this document or an earlier one, is no
      evidence either way (a document pushed by a WebSub hub may hold only a live page's newest update).
    """
    by_guid: dict[str, tuple[set[str], set[str]]] = defaultdict(lambda: (set(), set()))
    for entry in entries:
        if (guid := _guid(entry)) is not None:
            linked, titled = by_guid[guid]
            if (link := _link(entry)) is not None:
                linked.add(link)
            else:
                titled.add(normalise_text(entry.title))
    for guid, (linked, titled) in by_guid.items():
        if len(linked) > 1:
            return f"duplicate: GUID {guid!r} names {len(linked)} different links in one document"
        if not linked and len(titled) > 1:
            return f"duplicate: GUID {guid!r} names {len(titled)} differently titled entries in one document"
    for link, (guid,) in _single(_guids_by_link(entries)).items():
        before = links.get(link)
        if guid and guid not in known and before and before != guid and before not in by_guid:
            return f"changed: {link} was GUID {before!r}, now {guid!r}"
    return None


# Link index value for a link several GUIDs showed in one document (a live page's updates, items that all link to a
# home page): it names none of them, and says nothing about their GUIDs. Once shared, always shared.
SHARED = ""


@dataclass(frozen=True)
class Naming:
    """The names (`entry_guid`) of one document's entries, and what to remember of them in the feed's link index."""

    names: list[str]  # one per entry, in the document's order
    links: dict[str, str]  # canonical link → GUID (or SHARED), to merge into the index


def name_entries(entries: Sequence[FeedEntry], *, guid_reliable: bool, links: Mapping[str, str]) -> Naming:
    """Name a document's entries given whether the feed's GUIDs are reliable and the feed's link index `links`.

    Reliable GUIDs: each entry is `entry_guid`, and every link that one GUID carries is remembered with it (the
    evidence `guid_trouble` reads next time). Unreliable GUIDs: an entry with a link is named by its link, except
    - a link the index holds a GUID for keeps that GUID as its name (the entry was published under it before the
      switch: it stays one entry, and its edits are revisions); the index keeps these, and learns no new GUIDs;
    - a shared link (`SHARED`) names none of its entries: they keep their GUIDs.
    """
    shown = _guids_by_link(entries)
    shared = {link for link, guids in shown.items() if len(guids) > 1 or links.get(link) == SHARED}
    remembered = dict.fromkeys(shared, SHARED)
    if guid_reliable:
        names = [entry_guid(entry) for entry in entries]
        remembered |= {link: guid for link, (guid,) in _single(shown).items() if guid and link not in shared}
        return Naming(names, remembered)
    # A GUID the index holds for two links of this document would make them one entry: neither keeps it.
    claims = Counter(links[link] for link in shown if links.get(link))
    names = []
    for entry in entries:
        guid, link = _guid(entry), _link(entry)
        if link is None:
            names.append(entry_guid(entry))
        elif guid and link in shared:
            names.append(guid)
        elif (pin := links.get(link)) and claims[pin] == 1:
            names.append(pin)
            remembered[link] = pin
        else:
            names.append(link)
    return Naming(names, remembered)


def content_fingerprint(entry: FeedEntry) -> str:
    """The content version: same normalised title and text, same fingerprint (design §2.2)."""
    return _digest(normalise_text(entry.title) + "\n" + normalise_text(entry.text))


def update_id(identity: str, fingerprint: str) -> str:
    """Deterministic id of one version of one entry."""
    return "u_" + _digest(f"{identity}\n{fingerprint}", 24)
