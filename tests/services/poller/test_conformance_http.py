"""Conformance over real HTTP: feedparser's corpus http cases, served with their `Header:` lines, fetched, parsed.

feedparser's own runtests.py serves every corpus file whose path mentions "http" (and the compression/ files) from a
loopback server that sends each file's `Header:` lines as response headers. This module does the same on a free port and
runs the documents through livedesk's real fetcher and parse boundary, so headers (Content-Type charsets, redirects,
validators, Content-Encoding) take part exactly as they would in production.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import pytest

from schemas import FeedSource
from services.errors import FeedError, FetchError
from services.poller.fetch import FetchResult, build_client, fetch_feed
from services.poller.parse import ParsedFeed, parse_feed
from services.settings import Settings
from tests.services.poller.test_parse import (
    CORPUS,
    EXPECT,
    HEADER,
    KEPT,
    Agreement,
    compare_claims,
    kept_claims,
)

ROOT = CORPUS.parent
# runtests.py hard-codes its server's origin in Location headers; ours listens on a free port instead.
_CORPUS_ORIGINS = (b"http://localhost:8097", b"http://127.0.0.1:8097")
_RETURN_304 = "/-/return-304.xml"  # runtests.py answers this path with a bare 304 (the redirect-to-304 case)


def http_cases() -> list[Path]:
    """The documents runtests.py serves over HTTP: every path mentioning "http", and the compression/ files."""
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix in (".xml", ".gz", ".z"))
    return [p for p in files if "http" in p.relative_to(CORPUS).as_posix() or p.parent.name == "compression"]


class CorpusHandler(BaseHTTPRequestHandler):
    """Serves corpus files at /tests/<path> the way runtests.py does: Header: lines become response headers."""

    server: CorpusServer

    def do_GET(self) -> None:
        path = unquote(urlsplit(self.path).path)
        if path == _RETURN_304:
            self.send_response(304)
            self.end_headers()
            return
        target = (ROOT / path.lstrip("/")).resolve()
        if not (target.is_relative_to(CORPUS) and target.is_file()):
            self.send_error(404)
            return
        body = target.read_bytes()
        headers = self.server.headers_for(target, body)
        # As runtests.py: a validator matching the case's own ETag or Last-Modified header gets a 304.
        etag_matches = self.headers.get("If-None-Match") == headers.get("ETag", "\0")
        date_matches = self.headers.get("If-Modified-Since") == headers.get("Last-Modified", "\0")
        status = int(headers.pop("Status", "200"))
        status = 304 if etag_matches or date_matches else status
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if status == 304:
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class CorpusServer(ThreadingHTTPServer):
    """A loopback server for the corpus on a free port."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), CorpusHandler)
        self.origin = f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: Path) -> str:
        return f"{self.origin}/{path.relative_to(ROOT).as_posix()}"

    def with_our_origin(self, text: bytes) -> bytes:
        for origin in _CORPUS_ORIGINS:
            text = text.replace(origin, self.origin.encode())
        return text

    def headers_for(self, path: Path, body: bytes) -> dict[str, str]:
        """The response headers runtests.py would send for this file, its origin swapped for ours."""
        if path.parent.name == "compression":
            # The compression files' names say how they are encoded; they carry no Header: lines.
            encoding = "gzip" if path.suffix == ".gz" else "deflate"
            return {"Content-Type": "application/xml", "Content-Encoding": encoding}
        headers: dict[str, str] = {}
        for name, value in HEADER.findall(body):
            headers[name.strip().decode()] = self.with_our_origin(value).strip().decode("latin-1")
        headers.setdefault("Content-type", mimetypes.guess_type(path.name)[0] or "application/octet-stream")
        return headers


@pytest.fixture
def corpus_server() -> Iterator[CorpusServer]:
    if not CORPUS.is_dir():
        pytest.fail(f"feedparser corpus not found at {CORPUS} (expected beside the repo in shared/corpora)")
    httpd = CorpusServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@dataclass
class Served:
    """What happened to the served cases."""

    cases: int = 0
    parsed: int = 0
    not_modified: int = 0
    errors: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)


def without_content_location_uris(
    claims: list[tuple[tuple[Any, ...], Any]], headers: dict[str, str], tally: Agreement
) -> list[tuple[tuple[Any, ...], Any]]:
    """The claims left to compare once those on URIs resolved against a Content-Location header are set aside."""
    if not any(name.lower() == "content-location" for name in headers):
        return claims
    # feedparser takes Content-Location as the base URI (RFC 2616); RFC 7231 (§3.1.4.2, Appendix B) dropped that, and
    # livedesk resolves links against the URL it actually fetched. A different base is not a disagreement on parsing.
    kept = [(subject, value) for subject, value in claims if KEPT[subject] not in ("link", "guid")]
    for _ in range(len(claims) - len(kept)):
        tally.skip("URI based on Content-Location")
    return kept


async def _fetch_and_parse(http: httpx.AsyncClient, url: str, name: str) -> tuple[FetchResult, ParsedFeed | None]:
    settings = Settings(_env_file=None, allow_private_hosts=True)
    source = FeedSource(id=name, name=name, url=url)
    result = await fetch_feed(http, source, etag=None, last_modified=None, max_body_bytes=settings.http_max_body_bytes)
    if result.body is None:
        return result, None
    return result, parse_feed(result.body, feed=name, content_type=result.content_type, base_url=result.url)


async def test_http_cases_never_crash_and_agree_on_kept_fields(corpus_server: CorpusServer) -> None:
    """Every http case gives entries, not-modified or FeedError/FetchError; Expect claims on kept fields mostly hold."""
    cases = http_cases()
    assert len(cases) >= 140, f"corpus looks incomplete: {len(cases)} http cases under {CORPUS}"
    served, tally = Served(), Agreement()
    async with build_client(Settings(_env_file=None, allow_private_hosts=True)) as http:
        for path in cases:
            name = path.relative_to(CORPUS).as_posix()
            served.cases += 1
            parsed: ParsedFeed | None = None
            try:
                result, parsed = await _fetch_and_parse(http, corpus_server.url(path), name)
            except (FeedError, FetchError) as error:
                served.errors.append(f"{name}: {type(error).__name__}: {error}")
            except Exception as exc:  # the point of the test: anything else is a crash, listed below
                served.crashes.append(f"{name}: {type(exc).__name__}: {exc}")
            else:
                served.parsed += parsed is not None
                served.not_modified += result.not_modified
            body = path.read_bytes()
            expect = EXPECT.search(body)
            if expect:
                # Expect lines name runtests.py's origin where a value depends on the document's URL.
                claims = kept_claims(corpus_server.with_our_origin(expect.group(1)).decode("utf-8", "replace"))
                claims = without_content_location_uris(claims, corpus_server.headers_for(path, body), tally)
                compare_claims(claims, parsed, body, name, tally)
    print(
        f"\nhttp conformance: {served.cases} cases, {tally.compared} checkable, {tally.agreed} agree"
        f" ({served.parsed} parsed, {served.not_modified} not modified, {len(served.errors)} FeedError/FetchError,"
        f" {len(served.crashes)} crashed; not comparable: {tally.not_comparable})"
    )
    for line in served.errors:
        print("  error:", line)
    for line in tally.disagreed:
        print("  disagrees:", line)
    assert served.crashes == []
    assert tally.compared >= 15, "too few checkable Expect claims: the Expect parser no longer matches the corpus"
    assert tally.agreed / tally.compared >= 0.9, f"{tally.agreed}/{tally.compared} agree"


async def test_http_status_cases_behave_as_runtests_expects(corpus_server: CorpusServer) -> None:
    """The http/ status cases (their Expect lines say nothing): redirects reach the target, 304s cost no parse."""
    http_dir = CORPUS / "http"
    async with build_client(Settings(_env_file=None, allow_private_hosts=True)) as http:
        for code in ("301", "302", "303", "307"):
            result, parsed = await _fetch_and_parse(http, corpus_server.url(http_dir / f"http_status_{code}.xml"), code)
            assert result.url == corpus_server.url(http_dir / "target.xml")
            assert parsed is not None
            assert parsed.entries[0].title == "target"
        for broken in ("http_status_302-no-location.xml", "http_status_404.xml"):
            with pytest.raises(FeedError):
                await _fetch_and_parse(http, corpus_server.url(http_dir / broken), broken)
        # A redirect to a 304 is "not modified", not a parse of an empty body.
        result, parsed = await _fetch_and_parse(http, corpus_server.url(http_dir / "http_redirect_to_304.xml"), "r")
        assert (result.not_modified, parsed) == (True, None)
        url = corpus_server.url(http_dir / "http_status_304.xml")
        first, parsed = await _fetch_and_parse(http, url, "304")
        assert parsed is not None
        assert parsed.entries[0].title == "title 304"
        source = FeedSource(id="304", name="304", url=url)
        for etag, last_modified in ((first.etag, None), (None, first.last_modified)):
            again = await fetch_feed(http, source, etag=etag, last_modified=last_modified, max_body_bytes=1 << 20)
            assert again.not_modified
