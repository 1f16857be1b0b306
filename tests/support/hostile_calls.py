"""What the hostile-input tests measure in a process of their own (`tests.support.measure`): each call takes and
returns plain data, so it can be named on a command line and its result printed as JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from schemas import FeedSource
from services.poller.fetch import build_client, fetch_feed
from services.poller.parse import html_to_text, parse_feed
from services.settings import Settings
from services.tracker.extract import extract


def parse_file(path: str, content_type: str | None = None) -> dict[str, Any]:
    """Parse the document in `path` with `parse_feed`; its entries' guids, title lengths and the warnings."""
    parsed = parse_feed(Path(path).read_bytes(), feed=Path(path).name, content_type=content_type)
    return {
        "guids": [entry.guid for entry in parsed.entries],
        "title_lengths": [len(entry.title) for entry in parsed.entries],
        "warnings": parsed.warnings,
    }


async def fetch_url(url: str, max_body_bytes: int, timeout_s: float) -> dict[str, Any]:
    """Fetch `url` as the poller does, with this cap and timeout; the status and the size of the body."""
    settings = Settings(
        _env_file=None,
        http_timeout_s=timeout_s,
        http_connect_timeout_s=timeout_s,
        allow_private_hosts=True,
    )
    source = FeedSource(id="hostile", name="hostile", url=url)
    async with build_client(settings) as client:
        result = await fetch_feed(client, source, etag=None, last_modified=None, max_body_bytes=max_body_bytes)
    return {"status": result.status, "bytes": len(result.body or b"")}


def markup_text_length(path: str) -> int:
    """The length of `html_to_text` of the markup in `path`."""
    return len(html_to_text(Path(path).read_text()))


def extract_summary(title: str, text: str) -> dict[str, Any]:
    """What the tracker's extractor states about `title` and `text`, reduced to what fuzzing checks: the longest
    evidence snippet and the counts."""
    facts = extract(title, text)
    snippets = [stated.snippet for stated in (facts.category, facts.location, facts.dead, facts.injured, facts.cordon,
                                              facts.public_risk, facts.arrests, facts.charges) if stated is not None]
    snippets += [fact.snippet for fact in facts.investigations]
    snippets += [stated.snippet for person in facts.casualties
                 for stated in (person.condition, person.life_changing) if stated is not None]
    counts = [stated.value for stated in (facts.dead, facts.injured, facts.arrests, facts.charges) if stated]
    return {"longest_snippet": max(map(len, snippets), default=0), "counts": counts}
