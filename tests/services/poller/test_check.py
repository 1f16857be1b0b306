"""`livedesk feed check`: one line per entry or problem, one summary line, exit code only for crashes."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from services.poller import check
from services.poller.check import CheckSummary, check_feeds
from services.poller.parse import parse_feed
from services.settings import Settings

GOOD = b"""<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Met</title>
<item><title>Man shot &amp;amp; injured</title><guid>g1</guid><link>/news/1</link>
  <pubDate>Fri, 24 Oct 2025 10:20:00 +0100</pubDate><description>&lt;p&gt;critical&lt;/p&gt;</description></item>
<item><title>Cordon</title><guid>g2</guid></item>
</channel></rss>"""
HTML = b"<!doctype html><html><body>Sorry</body></html>"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "b-sub").mkdir()
    (tmp_path / "a-good.xml").write_bytes(GOOD)
    (tmp_path / "b-sub" / "page.html").write_bytes(HTML)
    (tmp_path / "c-empty.xml").write_bytes(b"")
    return tmp_path


async def run(targets: list[str], **options: Any) -> tuple[CheckSummary, list[str]]:
    out = io.StringIO()
    summary = await check_feeds(targets, out=out, settings=Settings(allow_private_hosts=True), **options)
    return summary, out.getvalue().splitlines()


async def test_folder_reports_entries_errors_and_summary(folder: Path) -> None:
    """Every file below a folder is checked in sorted order; entries are JSON lines, refusals ERROR lines."""
    summary, lines = await run([str(folder)])
    good, html, empty = folder / "a-good.xml", folder / "b-sub" / "page.html", folder / "c-empty.xml"
    assert lines[2:] == [
        f"ERROR {html}: not a feed: looks like HTML",
        f"ERROR {empty}: empty body",
        "checked 3, ok 1, errors 2, crashed 0",
    ]
    first, second = (json.loads(line) for line in lines[:2])
    assert first == {
        "feed": str(good),
        "guid": "g1",
        "link": "/news/1",
        "title": "Man shot & injured",
        "text": "critical",
        "html": "<p>critical</p>",
        "published": "2025-10-24T09:20:00Z",
        "updated": None,
    }
    assert (second["feed"], second["guid"], second["title"]) == (str(good), "g2", "Cordon")
    assert (summary.checked, summary.ok, summary.errors, summary.crashed) == (3, 1, 2, 0)
    assert summary.exit_code == 0


async def test_quiet_prints_only_problems_and_summary(folder: Path) -> None:
    """With entries=False only ERROR lines and the summary are printed."""
    _, lines = await run([str(folder)], entries=False)
    assert [line.split(" ", 1)[0] for line in lines] == ["ERROR", "ERROR", "checked"]


async def test_warnings_can_be_shown(tmp_path: Path) -> None:
    """With warnings=True, tolerated problems are printed as WARN lines."""
    path = tmp_path / "dates.xml"
    path.write_bytes(GOOD.replace(b"Fri, 24 Oct 2025 10:20:00 +0100", b"someday"))
    _, lines = await run([str(path)], entries=False, warnings=True)
    assert lines == [
        f"WARN {path}: entry 1: unparseable published date 'someday'",
        "checked 1, ok 1, errors 0, crashed 0",
    ]


async def test_crash_is_reported_and_sets_exit_code(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception is a CRASH line, the other documents are still checked, and exit_code is 1."""

    def parse_or_crash(body: bytes, **kwargs: Any) -> Any:
        if body == GOOD:
            raise RuntimeError("boom\nsecond line")
        return parse_feed(body, **kwargs)

    monkeypatch.setattr(check, "parse_feed", parse_or_crash)
    summary, lines = await run([str(folder)], entries=False)
    assert lines[0] == f"CRASH {folder / 'a-good.xml'}: RuntimeError: boom second line"
    assert lines[-1] == "checked 3, ok 0, errors 2, crashed 1"
    assert summary.exit_code == 1


async def test_missing_path_is_an_error(tmp_path: Path) -> None:
    """A path that does not exist is an ERROR line, not a crash."""
    summary, lines = await run([str(tmp_path / "nope.xml")])
    assert lines == [f"ERROR {tmp_path / 'nope.xml'}: no such file: {tmp_path / 'nope.xml'}", summary.line()]
    assert summary.exit_code == 0


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body, status = (GOOD, 200) if self.path == "/feed.xml" else (b"", 404)
        self.send_response(status)
        self.send_header("Content-Type", "application/rss+xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def base_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


async def test_urls_are_fetched_then_parsed(base_url: str) -> None:
    """An http URL is fetched and parsed; relative links resolve against it; an HTTP error is an ERROR line."""
    summary, lines = await run([f"{base_url}/feed.xml", f"{base_url}/gone.xml"])
    first = json.loads(lines[0])
    assert (first["feed"], first["link"]) == (f"{base_url}/feed.xml", f"{base_url}/news/1")
    assert lines[2:] == [f"ERROR {base_url}/gone.xml: HTTP 404 Not Found", "checked 2, ok 1, errors 1, crashed 0"]
    assert summary.exit_code == 0
