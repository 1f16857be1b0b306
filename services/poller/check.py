"""The engine of `livedesk feed check PATH_OR_URL...`: fetch and parse documents, report each on one line.

Output, one line each: a JSON object per normalised entry (`{"feed": target, ...entry}`), `ERROR <target>: <reason>`
for a document livedesk refuses (FeedError or FetchError), `CRASH <target>: <ExcType>: <msg>` for a bug, and last
exactly one summary line `checked N, ok X, errors Y, crashed Z`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import httpx

from schemas import FeedSource
from services.errors import LivedeskError
from services.poller.fetch import build_client, fetch_feed
from services.poller.parse import parse_feed
from services.poller.parser_pool import parse_feed_bounded
from services.settings import Settings


@dataclass
class CheckSummary:
    """Counts over every document checked; `errors` are refusals with a reason, `crashed` are bugs."""

    checked: int = 0
    ok: int = 0
    errors: int = 0
    crashed: int = 0

    @property
    def exit_code(self) -> int:
        """0 unless something crashed: refusing a bad document is the checker working, not failing."""
        return 1 if self.crashed else 0

    def line(self) -> str:
        """The one summary line."""
        return f"checked {self.checked}, ok {self.ok}, errors {self.errors}, crashed {self.crashed}"


def _is_http(target: str) -> bool:
    return urlsplit(target).scheme.lower() in ("http", "https")


def _documents(target: str) -> Iterator[str]:
    """The documents a target names: itself, or every file below a folder, sorted, recursively."""
    if _is_http(target) or not os.path.isdir(target):
        yield target
        return
    # os.walk does not follow symlinked folders, so a link loop cannot make the walk endless. Sorting on path parts
    # gives `find | sort` order: a folder's files and subfolders interleaved by name.
    found = [os.path.join(folder, name) for folder, _, files in os.walk(target) for name in files]
    yield from sorted(found, key=lambda path: Path(path).parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


async def _check_document(
    client: httpx.AsyncClient, target: str, settings: Settings, out: TextIO, entries: bool, warnings: bool
) -> None:
    source = FeedSource(id=target, name=target, url=target)
    fetched = await fetch_feed(
        client, source, etag=None, last_modified=None, max_body_bytes=settings.http_max_body_bytes
    )
    body, base_url = fetched.body or b"", fetched.url if _is_http(fetched.url) else None
    # A document from the network is parsed under the poller's CPU and memory limits; the operator's own files
    # (thousands of them, for a conformance corpus) in this process.
    if _is_http(target):
        parsed = await parse_feed_bounded(body, feed=target, content_type=fetched.content_type, base_url=base_url)
    else:
        parsed = parse_feed(body, feed=target, content_type=fetched.content_type, base_url=base_url)
    if warnings:
        for warning in parsed.warnings:
            out.write(f"WARN {target}: {warning}\n")
    if entries:
        for entry in parsed.entries:
            out.write(json.dumps({"feed": target, **entry.model_dump(mode="json")}, ensure_ascii=False) + "\n")


async def check_feeds(
    targets: list[str], *, out: TextIO, settings: Settings, entries: bool = True, warnings: bool = False
) -> CheckSummary:
    """Fetch and parse every document the targets name, writing one line per entry or problem to `out`.

    Args:
        targets: Paths to files, folders (every file below, sorted, recursively) or http(s) URLs.
        out: Where the lines go.
        settings: HTTP timeouts, User-Agent and the body cap, as the poller uses them.
        entries: False prints only problem lines and the summary (for large corpora).
        warnings: True also prints `WARN <target>: <warning>` for what was wrong but tolerated.

    Returns:
        The counts; `exit_code` is non-zero only when something crashed. A document that cannot be
        used is an error line, never an exception, and does not stop the others.
    """
    summary = CheckSummary()
    async with build_client(settings) as client:
        for target in targets:
            for document in _documents(target):
                summary.checked += 1
                try:
                    await _check_document(client, document, settings, out, entries, warnings)
                except LivedeskError as exc:
                    summary.errors += 1
                    reason = getattr(exc, "reason", None) or str(exc)
                    out.write(f"ERROR {document}: {_one_line(reason)}\n")
                except Exception as exc:  # a crash is what this command exists to find: report it and go on
                    summary.crashed += 1
                    out.write(f"CRASH {document}: {type(exc).__name__}: {_one_line(str(exc))}\n")
                else:
                    summary.ok += 1
    out.write(summary.line() + "\n")
    return summary
