"""The console's page in a real browser: Debian's Chromium, driven by Playwright, against a replay in progress."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright, expect
from redis.asyncio import Redis

from services.cli import DEMO_ARCHIVE
from services.replay import REPLAY_STAGES
from services.settings import Settings
from services.stage import StageContext
from tests.services.console.conftest import ROOT, WALTHAMSTOW, console_at, polled_feeds
from tests.support.pipeline import ArchivePlayer, running_stages

pytestmark = pytest.mark.redis

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package; Playwright downloads no browser of its own here
CHROMIUM_MISSING = f"{CHROMIUM} missing: apt-get install chromium (.ci/run does)" if not CHROMIUM.exists() else ""
HANDSWORTH = "i_df63fb3911fa691b"  # the second-shooting scenario's incident
MET_POLICE_RELEASE = ("https://news.met-police.example.org/news/"
                      "man-taken-to-hospital-after-police-firearms-discharge-in-walthamstow-512877")


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    assert not CHROMIUM_MISSING, CHROMIUM_MISSING
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield browser
        finally:
            await browser.close()


def watch_for_errors(page: Page) -> list[str]:
    """Every script error and console error of `page` (a refused request, a CSP violation, an exception)."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"page error: {error}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            errors.append(f"console: {message.text}")

    page.on("console", on_console)
    return errors


async def test_page_shows_the_incident_and_changes_appear_without_reload(
        settings: Settings, redis: Redis, redis_url: str, tmp_path: Path) -> None:
    """The page shows the incident the replay opened, with its facts; the changes committed after the page loaded
    (a condition, then the rest of the story, then another incident) appear on it live, with evidence links, in the
    same document; a screenshot is saved."""
    expect.set_options(timeout=15_000)
    ctx = StageContext(settings, redis)
    story = ArchivePlayer(redis, ctx, DEMO_ARCHIVE)
    async with asyncio.timeout(90), running_stages(ctx, redis_url, REPLAY_STAGES), \
            console_at(settings, redis) as (base, _), chromium() as browser:
        await story.play_until("east-london-echo", "20251024T134000Z")  # the report that opens the incident
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        errors = watch_for_errors(page)
        await page.goto(base)

        card = page.locator(f'[data-incident-id="{WALTHAMSTOW}"]')
        await expect(card.locator(".title")).to_have_text("Man shot by police in Walthamstow")
        await expect(card.locator(".category")).to_have_text("shooting")
        await expect(card.locator(".place")).to_contain_text("Walthamstow, London")
        await expect(card.locator('[data-fact="injured"]')).to_have_text("1")
        await expect(card.locator(".timeline li")).to_have_count(1)  # incident opened, from its history
        await expect(card.locator(".timeline li a")).to_have_attribute("href", ("https://www.eastlondonecho.example"
                                                                                ".com/news/2025/10/24/man-shot-by-police"
                                                                                "-walthamstow?utm_source=rss&utm_medium"
                                                                                "=feed"))
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        await page.evaluate("window.loadedOnce = true")  # gone if the page were loaded again

        await story.play(1)  # the Met's release: the man's condition is critical
        change = card.locator('.timeline li.live[data-event-type="condition_updated"]')
        await expect(change).to_have_count(1)
        await expect(change).to_contain_text("condition of man: unknown → critical")
        await expect(change.locator("a")).to_have_attribute("href", MET_POLICE_RELEASE)
        await expect(card.locator('[data-fact="condition"]')).to_have_text("man (subject): critical")

        await story.play()  # the rest of the story
        await expect(card.locator(".timeline li")).to_have_count(14)
        await expect(card.locator('[data-fact="condition"]')).to_have_text(
            "man (subject): stable, life-changing injuries")
        await expect(card.locator('[data-fact="cordon"]')).to_have_text("lifted")
        await expect(card.locator('[data-fact="public risk"]')).to_have_text("none")
        await expect(card.locator('.timeline li[data-event-type="cordon_updated"]')).to_have_count(2)

        other = ArchivePlayer(redis, ctx, ROOT / "tests" / "scenarios" / "second-shooting")
        await other.play()  # a shooting in Birmingham: a new incident, on top as the most recently active
        await expect(page.locator("[data-incident-id]").first).to_have_attribute("data-incident-id", HANDSWORTH)
        await expect(page.locator(f'[data-incident-id="{HANDSWORTH}"] .place')).to_contain_text("Handsworth")

        assert await page.evaluate("window.loadedOnce === true"), "the page was reloaded"
        # Playwright's wait for all of the above proves the page moved with the stream; the picture is for people.
        shot = tmp_path / "console.png"
        await page.screenshot(path=shot, full_page=True)
        print(f"console screenshot: {shot}")
        assert shot.stat().st_size > 10_000
        assert errors == []


async def test_page_asks_for_the_token_and_then_shows_the_incidents(
        settings: Settings, redis: Redis, redis_url: str) -> None:
    """With a token configured the page shows the token form (the API answered 401); once the token is entered it
    lists the incidents and follows the event stream with it."""
    expect.set_options(timeout=15_000)
    guarded = settings.model_copy(update={"console_token": "console-token-0123456789"})
    ctx = StageContext(guarded, redis)
    story = ArchivePlayer(redis, ctx, DEMO_ARCHIVE)
    async with asyncio.timeout(60), running_stages(ctx, redis_url, REPLAY_STAGES), \
            console_at(guarded, redis) as (base, _), chromium() as browser:
        await story.play_until("east-london-echo", "20251024T134000Z")
        async with httpx.AsyncClient() as client:
            assert (await client.get(f"{base}/api/incidents")).status_code == 401
        page = await browser.new_page()
        await page.goto(base)
        await expect(page.locator("#token-form")).to_be_visible()
        await expect(page.locator("[data-incident-id]")).to_have_count(0)
        await page.fill("#token", "console-token-0123456789")
        await page.click("#token-form button[type=submit]")
        card = page.locator(f'[data-incident-id="{WALTHAMSTOW}"]')
        await expect(card).to_be_visible()
        await expect(page.locator("#token-form")).to_be_hidden()
        await expect(page.locator("#status")).to_have_attribute("data-state", "live")
        await story.play(1)
        await expect(card.locator('.timeline li.live[data-event-type="condition_updated"]')).to_have_count(1)
        with contextlib.suppress(Error):
            await page.close()


async def test_page_shows_feed_health_at_a_glance(settings: Settings, redis: Redis) -> None:
    """Each feed the poller polled is on the page with its health: a feed answering 304 is well and says 'not
    modified', a feed that is not a feed is bad with its error, a feed gone for good is bad and says so."""
    expect.set_options(timeout=15_000)
    async with asyncio.timeout(60), polled_feeds(settings, redis), console_at(settings, redis) as (base, _), \
            chromium() as browser:
        page = await browser.new_page()
        errors = watch_for_errors(page)
        await page.goto(base)
        good, broken, gone = (page.locator(f'[data-feed-id="{name}"]') for name in ("good", "broken", "gone"))
        await expect(good).to_have_attribute("data-health", "ok")
        await expect(good).to_contain_text("Good Times")
        await expect(good).to_contain_text("not modified")
        await expect(broken).to_have_attribute("data-health", "bad")
        await expect(broken).to_have_attribute("title", re.compile("broken"))
        await expect(gone).to_have_attribute("data-health", "bad")
        await expect(gone).to_contain_text("gone")
        await expect(page.locator("#no-incidents")).to_be_visible()
        assert errors == []
