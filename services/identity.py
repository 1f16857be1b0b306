"""Entry identity and content version (design.md §2, items 1 and 2): pure functions, no I/O."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from schemas import FeedEntry

# Query parameters that say how a reader arrived, not which page it is.
_TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "ocid", "cmpid", "at_medium", "at_campaign"}
)
_TRACKING_PREFIXES = ("utm_", "at_", "ns_", "_hs")
_SPACE = re.compile(r"\s+")
# Typographic variants that outlets swap freely; folded so a quote-style edit is not a new version.
_FOLD = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})


def _digest(text: str, length: int = 32) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def _is_tracking(name: str) -> bool:
    lowered = name.lower()
    return lowered in _TRACKING_PARAMS or lowered.startswith(_TRACKING_PREFIXES)


def canonical_link(url: str) -> str:
    """The link with case, `www.`, default ports, fragments, trailing slashes and tracking parameters removed.

    Two links that differ only in those ways name the same page and get the same canonical form.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower() or "http"
    host = (parts.hostname or "").lower().removeprefix("www.")
    if parts.port and (scheme, parts.port) not in {("http", 80), ("https", 443)}:
        host = f"{host}:{parts.port}"
    path = re.sub(r"/{2,}", "/", parts.path).rstrip("/") or "/"
    query = sorted((k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not _is_tracking(k))
    # http and https of one page are one page: the identity ignores the scheme.
    return urlunsplit(("https" if scheme in {"http", "https"} else scheme, host, path, urlencode(query), ""))


def normalise_text(text: str) -> str:
    """Text folded for comparison: Unicode-normalised, typographic variants folded, lower case, single spaces."""
    folded = unicodedata.normalize("NFKC", text).translate(_FOLD).lower()
    return _SPACE.sub(" ", folded).strip()


def entry_guid(entry: FeedEntry) -> str:
    """The entry's name within its feed: its GUID, else its canonical link, else a hash of its title."""
    if entry.guid and entry.guid.strip():
        return entry.guid.strip()
    if entry.link and entry.link.strip():
        return canonical_link(entry.link)
    return "title:" + _digest(normalise_text(entry.title), 16)


def entry_identity(source_id: str, entry: FeedEntry) -> str:
    """Which feed entry this is, across polls and edits: `source_id` + the entry's GUID (design §2.1)."""
    return f"{source_id}|{entry_guid(entry)}"


def content_fingerprint(entry: FeedEntry) -> str:
    """The content version: same normalised title and text, same fingerprint (design §2.2)."""
    return _digest(normalise_text(entry.title) + "\n" + normalise_text(entry.text))


def update_id(identity: str, fingerprint: str) -> str:
    """Deterministic id of one version of one entry."""
    return "u_" + _digest(f"{identity}\n{fingerprint}", 24)
