"""The `livedesk` command."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from schemas import Authority, ChangeEvent, FeedSource
from services.errors import ConfigurationError
from services.settings import Settings

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from services.poller.feeds import FeedRegistry
    from services.replay import ReplayResult

DEMO_ARCHIVE = Path(__file__).parent / "demo" / "walthamstow"

cli = typer.Typer(no_args_is_help=True, add_completion=False, help="Follow developing incidents across news feeds.")
feed_cli = typer.Typer(no_args_is_help=True, help="Look at feeds the way livedesk sees them.")
cli.add_typer(feed_cli, name="feed")
feeds_cli = typer.Typer(no_args_is_help=True, help="The live feed registry the pollers share.")
cli.add_typer(feeds_cli, name="feeds")
incidents_cli = typer.Typer(no_args_is_help=True, help="The incidents livedesk follows, and how each came to be.")
cli.add_typer(incidents_cli, name="incidents")
hooks_cli = typer.Typer(no_args_is_help=True, help="Alerting webhooks: which events go where, signed.")
cli.add_typer(hooks_cli, name="hooks")
deadletter_cli = typer.Typer(no_args_is_help=True, help="Messages and deliveries that failed too often.")
cli.add_typer(deadletter_cli, name="deadletter")


def _settings(**overrides: object) -> Settings:
    from pydantic import ValidationError

    from services.logs import configure_logging

    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        # One line per wrong setting, named as the operator sets it, instead of a traceback.
        for problem in error.errors():
            name = "LIVEDESK_" + "_".join(str(part) for part in problem["loc"]).upper()
            typer.echo(f"livedesk: {name}: {problem['msg']}", err=True)
        raise typer.Exit(code=2) from None
    configure_logging(settings)
    return settings


def _fail(error: Exception) -> typer.Exit:
    typer.echo(f"livedesk: {error}", err=True)
    return typer.Exit(code=2)


def _serve(settings: Settings, stages: list[str]) -> None:
    from services.app import build_app
    from services.heap import frozen_survivors
    from services.redis_server import redis_url

    try:
        with redis_url(settings) as url, frozen_survivors():
            asyncio.run(build_app(settings, url, stages).run())
    except ConfigurationError as error:
        raise _fail(error) from error
    except KeyboardInterrupt:
        pass


@cli.command()
def run(
    sources: Annotated[Path | None, typer.Option(help="Feed registry (TOML); default LIVEDESK_SOURCES.")] = None,
) -> None:
    """Run every stage in one process, polling the configured feeds. Ctrl-C stops it cleanly.

    The console (API, event stream, page, /metrics) is served on LIVEDESK_HTTP_HOST:LIVEDESK_HTTP_PORT, and the
    notifier delivers to the hooks of LIVEDESK_HOOKS_FILE and `livedesk hooks add`. With LIVEDESK_PUBLIC_URL set, the
    process also serves WebSub callbacks and subscribes to the hubs feeds name.
    """
    settings = _settings(sources=sources)
    _serve(settings, ["poller", "dedup", "tracker", "notifier", "console",
                      *(["push"] if settings.public_url else [])])


@cli.command()
def worker(
    stage: Annotated[str, typer.Argument(help="poller, dedup, tracker, notifier (webhooks), push (WebSub callbacks) "
                                          "or console (API, event stream and page).")],
    sources: Annotated[Path | None, typer.Option(help="Feed registry, for the poller.")] = None,
) -> None:
    """Run one stage; copies of a stage share its consumer group."""
    _serve(_settings(sources=sources), [stage])


async def _print_event(event: ChangeEvent) -> None:
    from services.render import event_line

    typer.echo(event_line(event))


def _replay(archive: Path, pace_s: float, echo: bool, console: bool = False) -> ReplayResult | None:
    from services.redis_server import redis_url
    from services.replay import replay

    # The demo is for watching the story: the pipeline's own log lines only when asked for.
    settings = _settings(log_level=os.environ.get("LIVEDESK_LOG_LEVEL", "warning" if echo else "info"))
    if console:
        typer.echo(f"the console: http://{settings.http_host}:{settings.http_port}/\n")
    try:
        with redis_url(settings) as url:
            return asyncio.run(replay(archive, settings, url, pace_s=pace_s, on_event=_print_event if echo else None,
                                      serve_console=console, before_cleanup=_linger if console else None))
    except ConfigurationError as error:
        raise _fail(error) from error
    except KeyboardInterrupt:
        return None


async def _linger() -> None:
    typer.echo("\nthe story is told; the console stays up until Ctrl-C")
    await asyncio.Event().wait()


@cli.command(name="replay")
def replay_command(
    archive: Annotated[Path, typer.Argument(help="Archive folder: sources.toml + snapshots/.")],
    out: Annotated[Path, typer.Option(help="Write every change event here, one JSON object per line.")],
    state: Annotated[Path, typer.Option(help="Write the final incidents here as a JSON array.")],
) -> None:
    """Run a replay archive through the pipeline and write its change events and final incidents."""
    result = _replay(archive, 0.0, echo=False)
    assert result is not None  # only a replay with the console waits for Ctrl-C
    out.write_text("".join(event.model_dump_json() + "\n" for event in result.events), encoding="utf-8")
    incidents = [incident.model_dump(mode="json") for incident in result.incidents]
    state.write_text(json.dumps(incidents, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    typer.echo(
        f"{len(result.events)} events, {len(result.incidents)} incidents, {len(result.feed_errors)} feed errors, "
        f"{len(result.dead_letters)} dead letters"
    )
    if result.dead_letters:
        for error in result.dead_letters:
            typer.echo(f"dead letter: {error}", err=True)
        raise typer.Exit(code=1)


@cli.command()
def demo(
    pace: Annotated[float, typer.Option(help="Seconds between snapshots.")] = 0.4,
    console: Annotated[bool, typer.Option("--console", help="Serve the console while the story plays, and after "
                                                            "it until Ctrl-C.")] = False,
) -> None:
    """Replay the bundled Walthamstow story and print each change event as it happens."""
    typer.echo("livedesk demo: a man shot by police in Walthamstow, as five feeds told it over two days\n")
    if _replay(DEMO_ARCHIVE, pace, echo=True, console=console) is not None:
        typer.echo("\ndone: every change above was told once, in order, with its evidence")


@cli.command()
def tail(
    as_json: Annotated[bool, typer.Option("--json", help="Print raw JSON lines.")] = False,
    from_start: Annotated[bool, typer.Option("--from-start", help="Print the stream's history first.")] = False,
) -> None:
    """Follow the `changes` stream and print events as they arrive."""
    from services.connection import connect
    from services.redis_server import redis_url
    from services.render import event_line
    from services.wire import entry_data

    settings = _settings()

    async def follow(url: str) -> None:
        redis = connect(url)
        last = "0" if from_start else "$"
        try:
            while True:
                rows: Any = await redis.xread({settings.keys.changes: last}, block=5000, count=100)
                for _, entries in rows:
                    for entry_id, data in entry_data(entries):
                        last = entry_id
                        typer.echo(data if as_json else event_line(ChangeEvent.model_validate_json(data)))
        finally:
            await redis.aclose()

    try:
        with redis_url(settings) as url:
            asyncio.run(follow(url))
    except KeyboardInterrupt:
        pass


@cli.command()
def health() -> None:
    """Exit 0 when the configured Redis answers; print as JSON each stage's backlog, every consumer group's lag (the
    stages' and subscribers': unread, pending, age of the oldest unfinished entry), the streams' lengths against
    their cap, each hook's queue, whether back-pressure holds the pollers, and the dedup verdict counts."""
    import time

    from redis.exceptions import RedisError

    from services.connection import connect
    from services.groups import CONSUMED_STREAMS, BackPressure, backlog, group_lags
    from services.notifier.hooks import HookRegistry
    from services.wire import as_text

    settings = _settings()
    if not settings.redis_url:
        raise _fail(ConfigurationError("health needs LIVEDESK_REDIS_URL: an embedded server has no one to ask"))

    async def ask(url: str) -> dict[str, object]:
        redis = connect(url, retries=0, socket_timeout=3)  # a health check answers now, not after an outage
        keys = settings.keys
        try:
            await redis.ping()
            verdicts = await redis.hgetall(keys.dedup_stats)
            now_ms = int(time.time() * 1000)
            behind = await BackPressure(redis, keys, settings.max_backlog).behind()
            return {
                "redis": "ok",
                "backlog": await backlog(redis, keys),
                "lag": [lag.as_report(now_ms) for lag in await group_lags(redis, keys)],
                "streams": {name: await redis.xlen(keys.stream(name)) for name in (*CONSUMED_STREAMS, "deadletter")},
                "retention": {"stream_retention_s": settings.stream_retention_s,
                              "stream_max_len": settings.stream_max_len},
                "back_pressure": {"max_backlog": settings.max_backlog, "holding": bool(behind), "behind": behind},
                "hook_queues": {hook.hook_id: await redis.xlen(keys.hook_queue(hook.hook_id))
                                for hook in await HookRegistry(redis, keys).all()},
                "dedup_verdicts": {as_text(k): int(v) for k, v in sorted(verdicts.items())},
            }
        finally:
            await redis.aclose()

    try:
        typer.echo(json.dumps(asyncio.run(ask(settings.redis_url))))
    except (OSError, RedisError) as error:
        typer.echo(json.dumps({"redis": f"unreachable: {error}"}))
        raise typer.Exit(code=1) from error


def _with_redis(work: Callable[[Redis, Settings], Awaitable[int]]) -> None:
    """Run `work` against the configured Redis; its return value is the exit code."""
    from services.connection import connect
    from services.redis_server import redis_url

    settings = _settings(log_level=os.environ.get("LIVEDESK_LOG_LEVEL", "warning"))

    async def run(url: str) -> int:
        redis = connect(url)
        try:
            return await work(redis, settings)
        finally:
            await redis.aclose()

    try:
        with redis_url(settings) as url:
            code = asyncio.run(run(url))
    except ConfigurationError as error:
        raise _fail(error) from error
    raise typer.Exit(code=code)


def _with_registry(work: Callable[[FeedRegistry, Settings], Awaitable[int]]) -> None:
    """Run `work` against the registry of the configured Redis; its return value is the exit code."""
    from services.poller.feeds import FeedRegistry

    async def with_registry(redis: Redis, settings: Settings) -> int:
        return await work(FeedRegistry(redis, settings.keys), settings)

    _with_redis(with_registry)


@feeds_cli.command("add")
def feeds_add(
    url: Annotated[str, typer.Argument(help="The feed's URL.")],
    authority: Annotated[Authority, typer.Option(help="official, news, blog or social.")] = Authority.news,
    name: Annotated[str | None, typer.Option(help="Human name; default the feed's title.")] = None,
    feed_id: Annotated[str | None, typer.Option("--id", help="Short id; default from the URL.")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="A label; repeat for several.")] = None,
) -> None:
    """Check that URL is a feed, then add it; a URL that is not a feed is refused and nothing is added."""
    from services.errors import LivedeskError
    from services.poller.feeds import feed_id_for, probe
    from services.poller.fetch import build_client

    async def add(registry: FeedRegistry, settings: Settings) -> int:
        source = FeedSource(id=feed_id or feed_id_for(url), name=name or url, url=url, authority=authority,
                            tags=tags or [])
        try:
            async with build_client(settings) as client:
                parsed = await probe(client, source, settings.http_max_body_bytes)
        except LivedeskError as error:
            typer.echo(f"not added: {error}", err=True)
            return 2
        source = source.model_copy(update={"name": name or parsed.title or url})
        await registry.upsert([source], due=datetime.now(UTC))
        typer.echo(f"added {source.id}: {source.name} ({len(parsed.entries)} entries)")
        return 0

    _with_registry(add)


@feeds_cli.command("list")
def feeds_list(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per feed.")] = False) -> None:
    """Every feed with its status: last fetch, last status code, next due, entries per day, hot, pushed (a live
    WebSub subscription), gone, GUIDs found unreliable (identities by link), errors.

    With --json, `hot`, `pushed` and `gone` are booleans, `error_count` an integer, `next_due` the feed's time in
    the due list (null when it is not in it: gone) and `entries_per_day` the scheduler's estimate (null until a
    document has been read); the other fields are as the pollers recorded them.
    """

    async def show(registry: FeedRegistry, settings: Settings) -> int:
        now = datetime.now(UTC)
        for source in await registry.all():
            state = await registry.status(source.id)
            state.pop("schedule", None)
            schedule = await registry.scheduling(source.id)
            # The due list, not the time the last poll chose: `feeds poll`, a hot incident or a lease move it.
            due = await registry.next_due(source.id)
            next_due = due.astimezone(UTC).isoformat() if due else None
            row: dict[str, object] = {
                "id": source.id, "authority": source.authority.value, "url": source.url,
                "configured_url": source.configured_url, **state, "next_due": next_due,
                "hot": schedule.hot_until is not None and schedule.hot_until > now,
                "gone": state.get("gone") == "1",
                "error_count": int(state.get("error_count") or 0),
                "entries_per_day": schedule.entries_per_day,
                "pushed": schedule.push_until is not None and schedule.push_until > now,
            }
            if as_json:
                typer.echo(json.dumps(row))
            else:
                typer.echo(
                    f"{source.id:<24} {source.authority.value:<8} last {state.get('last_polled_at', '-')[:19]:<19} "
                    f"status {state.get('last_status', '-'):<4} next {(next_due or '-')[:19]:<19} "
                    f"{_per_day(schedule.entries_per_day):>5}/day "
                    f"every {state.get('interval_s', '-'):>5}s ({state.get('schedule_reason', '-')})"
                    f"{' HOT' if row['hot'] else ''}{' PUSH' if row['pushed'] else ''}{' GONE' if row['gone'] else ''}"
                    f"{' GUIDS-UNRELIABLE' if state.get('guid_unreliable') else ''} errors {row['error_count']:<3} "
                    f"{state.get('last_error', '')}"
                )
        return 0

    _with_registry(show)


def _per_day(rate: float | None) -> str:
    """An entries-per-day estimate for a column: two significant digits below ten, whole numbers above."""
    if rate is None:
        return "-"
    return f"{rate:.2g}" if rate < 10 else f"{rate:.0f}"


@feeds_cli.command("remove")
def feeds_remove(feed_id: Annotated[str, typer.Argument(help="The feed's id.")]) -> None:
    """Stop polling a feed."""

    async def remove(registry: FeedRegistry, settings: Settings) -> int:
        if await registry.remove(feed_id):
            typer.echo(f"removed {feed_id}")
            return 0
        typer.echo(f"no feed {feed_id}", err=True)
        return 2

    _with_registry(remove)


@feeds_cli.command("poll")
def feeds_poll(feed_id: Annotated[str, typer.Argument(help="The feed's id.")]) -> None:
    """Make a feed due now: the next free poller polls it (a feed marked gone is tried again)."""

    async def poll_now(registry: FeedRegistry, settings: Settings) -> int:
        if not await registry.poll_now(feed_id):
            typer.echo(f"no feed {feed_id}", err=True)
            return 2
        typer.echo(f"{feed_id} is due now")
        return 0

    _with_registry(poll_now)


@feed_cli.command("check")
def feed_check(
    targets: Annotated[list[str], typer.Argument(help="Feed files, folders or URLs.")],
    errors_only: Annotated[bool, typer.Option("--errors-only", help="Print only errors and the summary.")] = False,
) -> None:
    """Parse feeds and print what livedesk sees: one normalised entry per line as JSON."""
    from services.poller.check import check_feeds

    summary = asyncio.run(check_feeds(targets, out=sys.stdout, settings=_settings(), entries=not errors_only))
    raise typer.Exit(code=summary.exit_code)


def main() -> None:
    cli()


@incidents_cli.command("list")
def incidents_list(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per incident.")] = False,
    limit: Annotated[int, typer.Option(help="At most this many, most recently active first.")] = 50,
) -> None:
    """The incidents, most recently active first: id, version, category, place, counts, sources, title."""
    from services.render import incident_line
    from services.tracker.store import IncidentStore

    async def show(redis: Redis, settings: Settings) -> int:
        incidents = await IncidentStore(redis, settings.keys).recent(limit)
        for incident in incidents:
            typer.echo(incident.model_dump_json(exclude={"provenance"}) if as_json else incident_line(incident))
        return 0

    _with_redis(show)


@incidents_cli.command("show")
def incidents_show(
    incident_id: Annotated[str, typer.Argument(help="The incident's id, as `incidents list` prints it.")],
    at: Annotated[str | None, typer.Option(help="An ISO 8601 time (UTC unless it says): show the state livedesk "
                                                "believed then, and the history up to it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The state and history as one JSON object.")] = False,
) -> None:
    """One incident: its state (now, or as believed at --at) and every revision, with why its update joined."""
    from services.render import history_lines
    from services.tracker.store import IncidentStore, believed_at

    when: datetime | None = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError as error:
            raise _fail(ValueError(f"--at {at!r} is not an ISO 8601 time (e.g. 2025-10-24T10:30Z)")) from error
        when = when if when.tzinfo else when.replace(tzinfo=UTC)

    async def show(redis: Redis, settings: Settings) -> int:
        history = await IncidentStore(redis, settings.keys).history(incident_id)
        if not history:
            typer.echo(f"livedesk: no incident {incident_id}", err=True)
            return 2
        own = [version for version in history if version.incident_id == incident_id]
        believed = believed_at(own, when) if when else own[-1]
        if believed is None:
            typer.echo(f"livedesk: {incident_id} was not known yet at {when:%Y-%m-%d %H:%M:%SZ}", err=True)
            return 1
        # Up to the revision shown, with those of the incidents merged into it that were believed by then.
        shown = history[: history.index(believed) + 1]
        if as_json:
            typer.echo(json.dumps({"believed": believed.model_dump(mode="json"),
                                   "history": [version.model_dump(mode="json") for version in shown]},
                                  ensure_ascii=False))
        else:
            typer.echo("\n".join(history_lines(believed, shown)))
        return 0

    _with_redis(show)


@hooks_cli.command("add")
def hooks_add(
    url: Annotated[str, typer.Argument(help="Where to POST the events.")],
    types: Annotated[list[str] | None, typer.Option("--types", help="Event types, comma-separated; repeatable.")]
    = None,
    where: Annotated[list[str] | None, typer.Option(help="Filter terms, e.g. 'category=shooting region=London'.")]
    = None,
    hook_format: Annotated[str, typer.Option("--format", help="json or slack.")] = "json",
    coalesce_s: Annotated[float | None, typer.Option(help="Events of one incident this close go out as one.")]
    = None,
    max_age_s: Annotated[float | None, typer.Option(help="Retry for this long, then dead-letter.")] = None,
    timeout_s: Annotated[float | None, typer.Option(help="Timeout of one request.")] = None,
    secret: Annotated[str | None, typer.Option(help="Signing secret (16+ characters); default a new one, printed "
                                                    "once.")] = None,
    hook_id: Annotated[str | None, typer.Option("--id", help="Short id; default a new one.")] = None,
) -> None:
    """Add (or replace, by --id) a webhook; running notifiers pick it up within seconds."""
    import uuid

    from services.notifier.hooks import HookRegistry, generate_secret, make_hook

    terms = [*(where or []), *(f"type={t}" for t in types or [])]
    fields: dict[str, object] = {"id": hook_id or f"h_{uuid.uuid4().hex[:10]}", "url": url, "format": hook_format,
                                 "where": " ".join(terms), "secret": secret or generate_secret(),
                                 **{k: v for k, v in (("coalesce_s", coalesce_s), ("max_age_s", max_age_s),
                                                      ("timeout_s", timeout_s)) if v is not None}}

    async def add(redis: Redis, settings: Settings) -> int:
        try:
            hook = make_hook(settings, fields)
        except ValueError as error:
            typer.echo(f"livedesk: hook not added: {error}", err=True)
            return 2
        await HookRegistry(redis, settings.keys).upsert([hook])
        typer.echo(f"added {hook.hook_id}: {hook.url}")
        if secret is None:
            typer.echo(f"secret (shown once): {hook.secret}")
        return 0

    _with_redis(add)


@hooks_cli.command("list")
def hooks_list(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hook.")] = False) -> None:
    """Every hook with its filter and settings, and how many events it still has queued; never its secret."""
    from services.filters import describe
    from services.notifier.hooks import HookRegistry

    async def show(redis: Redis, settings: Settings) -> int:
        for hook in await HookRegistry(redis, settings.keys).all():
            row = hook.model_dump(mode="json", exclude={"secret"})
            row["where_text"] = describe(hook.where)
            row["queued"] = await redis.xlen(settings.keys.hook_queue(hook.hook_id))
            typer.echo(json.dumps(row) if as_json else
                       f"{hook.hook_id:<16} {hook.format.value:<5} {hook.url} where {row['where_text'] or '(all)'}"
                       f" coalesce {hook.coalesce_s:g}s max-age {hook.max_age_s:g}s queued {row['queued']}")
        return 0

    _with_redis(show)


@hooks_cli.command("test")
def hooks_test(hook_id: Annotated[str, typer.Argument(help="The hook's id.")]) -> None:
    """Send a sample signed event to the hook now and print what the receiver answered; exit 1 unless 2xx."""
    from services.notifier.formats import delivery_id, render, sample_event
    from services.notifier.hooks import HookRegistry
    from services.notifier.send import build_hook_client, post

    async def send(redis: Redis, settings: Settings) -> int:
        hook = await HookRegistry(redis, settings.keys).get(hook_id)
        if hook is None:
            typer.echo(f"livedesk: no hook {hook_id}", err=True)
            return 2
        events = [sample_event()]
        async with build_hook_client(settings) as client:
            attempt = await post(client, hook, render(hook, events), delivery_id(events))
        outcome = "ok" if attempt.ok else f"{attempt.verdict.value}: {attempt.error}"
        typer.echo(f"{hook_id}: status {attempt.status or '-'} {outcome} ({attempt.elapsed_ms:.0f} ms)")
        return 0 if attempt.ok else 1

    _with_redis(send)


@hooks_cli.command("remove")
def hooks_remove(hook_id: Annotated[str, typer.Argument(help="The hook's id.")]) -> None:
    """Remove a hook and what it still had queued."""
    from services.notifier.hooks import HookRegistry

    async def remove(redis: Redis, settings: Settings) -> int:
        if await HookRegistry(redis, settings.keys).remove(hook_id):
            typer.echo(f"removed {hook_id}")
            return 0
        typer.echo(f"livedesk: no hook {hook_id}", err=True)
        return 2

    _with_redis(remove)


@hooks_cli.command("redeliver")
def hooks_redeliver(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letter ids; default every webhook dead letter.")]
    = None,
    hook_id: Annotated[str | None, typer.Option("--hook", help="Only this hook's dead letters.")] = None,
) -> None:
    """Queue webhook dead letters on their hook again (removing them from the dead letters)."""
    from services.notifier.deadletters import redeliver
    from services.notifier.hooks import HookRegistry

    async def requeue(redis: Redis, settings: Settings) -> int:
        hooks = {hook.hook_id for hook in await HookRegistry(redis, settings.keys).all()}
        if hook_id is not None and hook_id not in hooks:
            typer.echo(f"livedesk: no hook {hook_id}", err=True)
            return 2
        queued = await redeliver(redis, settings.keys, hook_id, ids or (), known_hooks=hooks)
        for letter in queued:
            typer.echo(f"re-queued {letter.dead_letter_id} for {letter.hook_id}")
        typer.echo(f"{len(queued)} re-queued")
        return 0

    _with_redis(requeue)


@deadletter_cli.command("list")
def deadletter_list(as_json: Annotated[bool, typer.Option("--json", help="One JSON object per dead letter.")]
                    = False) -> None:
    """Every dead letter, oldest first: id, where it failed, the hook (for a delivery) and the error."""
    from services.notifier.deadletters import read_dead_letters

    async def show(redis: Redis, settings: Settings) -> int:
        for letter in await read_dead_letters(redis, settings.keys):
            typer.echo(letter.model_dump_json(exclude={"payload"}) if as_json else
                       f"{letter.dead_letter_id:<16} {letter.group:<8} {letter.hook_id or '-':<16} "
                       f"{letter.deliveries:>3}x {letter.error}")
        return 0

    _with_redis(show)


@deadletter_cli.command("show")
def deadletter_show(dead_letter_id: Annotated[str, typer.Argument(help="As `deadletter list` prints it.")]) -> None:
    """One dead letter as JSON, with its original payload."""
    from services.notifier.deadletters import read_dead_letters

    async def show(redis: Redis, settings: Settings) -> int:
        found = await read_dead_letters(redis, settings.keys, [dead_letter_id])
        if not found:
            typer.echo(f"livedesk: no dead letter {dead_letter_id}", err=True)
            return 2
        typer.echo(found[0].model_dump_json(indent=2))
        return 0

    _with_redis(show)


@deadletter_cli.command("replay")
def deadletter_replay(
    ids: Annotated[list[str] | None, typer.Argument(help="Dead letter ids, as `deadletter list` prints them.")]
    = None,
    replay_all: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
) -> None:
    """Put dead letters back on the stream they failed on, for its group to read again, and remove them.

    A webhook dead letter goes back on its hook's queue (as `hooks redeliver`), unless the hook was removed. Exit 0
    when every dead letter asked for went back; 1 when some were left (the reason is printed); 2 for an id that is
    not a dead letter.
    """
    from services.notifier.deadletters import read_dead_letters, replay_dead_letters
    from services.notifier.hooks import HookRegistry

    if bool(ids) == replay_all:
        raise _fail(ValueError("name the dead letters to replay, or pass --all (not both)"))

    async def put_back(redis: Redis, settings: Settings) -> int:
        if ids:
            found = {letter.dead_letter_id for letter in await read_dead_letters(redis, settings.keys, ids)}
            if missing := [i for i in ids if i not in found]:
                typer.echo(f"livedesk: no dead letter {', '.join(missing)}", err=True)
                return 2
        hooks = {hook.hook_id for hook in await HookRegistry(redis, settings.keys).all()}
        done = await replay_dead_letters(redis, settings.keys, ids or (), known_hooks=hooks)
        for letter, new_id in done.put_back:
            typer.echo(f"replayed {letter.dead_letter_id} to {letter.hook_id or letter.group} as {new_id}")
        for letter, reason in done.skipped:
            typer.echo(f"left {letter.dead_letter_id}: {reason}", err=True)
        typer.echo(f"{len(done.put_back)} replayed, {len(done.skipped)} left")
        return 1 if done.skipped else 0

    _with_redis(put_back)
