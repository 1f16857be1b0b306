"""Hook rules: the TOML file, the shared registry, and the idempotent fan-out to hook queues."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas import EventType
from schemas.subscriptions import HookFormat
from services.errors import ConfigurationError
from services.groups import backlog
from services.notifier.hooks import HookRegistry, load_hooks_file
from services.notifier.stage import fan_out
from services.settings import Settings
from services.stage import StageContext
from tests.services.notifier.conftest import add_hook, change, publish
from tests.support.pipeline import running_stages
from tests.support.waiting import eventually


def test_hooks_file_with_text_and_table_filters(tmp_path: Path, settings: Settings,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """[[hook]] tables load with either filter form, the settings' defaults, and a secret from the environment."""
    monkeypatch.setenv("OPS_HOOK_SECRET", "x" * 20)
    path = tmp_path / "hooks.toml"
    path.write_text('''
[[hook]]
id = "ops"
url = "https://ops.example.org/hook"
where = "type=condition_updated region=London"
format = "slack"
secret_env = "OPS_HOOK_SECRET"
coalesce_s = 30

[[hook]]
id = "feed"
url = "http://127.0.0.1:9000/in"
where = { categories = ["shooting"], min_corroboration = "several" }
secret = "0123456789abcdef"
''')
    ops, feed = load_hooks_file(path, settings)
    assert ops.where.types == [EventType.condition_updated]
    assert ops.where.regions == ["London"]
    assert ops.format is HookFormat.slack
    assert ops.secret == "x" * 20
    assert ops.coalesce_s == 30
    assert feed.where.needs_incident
    assert feed.timeout_s == settings.hook_timeout_s
    assert feed.max_age_s == settings.hook_max_age_s


@pytest.mark.parametrize(
    ("table", "complaint"),
    [
        ('id = "a"\nurl = "https://x.example/h"', "hook a: needs a secret"),
        ('id = "b"\nurl = "https://x.example/h"\nsecret = "short"', "hook b: secret"),
        ('id = "c"\nurl = "not a url"\nsecret = "0123456789abcdef"', "hook c: url"),
        ('id = "d"\nurl = "https://x.example/h"\nsecret = "0123456789abcdef"\nwhere = "colour=red"',
         "hook d: 'colour=red': unknown filter"),
        ('id = "e"\nurl = "https://x.example/h"\nsecret = "0123456789abcdef"\nretries = 3', "hook e: unknown key"),
        ('url = "https://x.example/h"\nsecret = "0123456789abcdef"', "hook #1: hook_id"),
    ],
)
def test_a_bad_hooks_file_names_the_file_and_the_hook(tmp_path: Path, settings: Settings, table: str,
                                                      complaint: str) -> None:
    """Each mistake fails loading with the file, the hook and what is wrong."""
    path = tmp_path / "hooks.toml"
    path.write_text(f"[[hook]]\n{table}\n")
    with pytest.raises(ConfigurationError) as raised:
        load_hooks_file(path, settings)
    assert str(path) in str(raised.value)
    assert complaint in str(raised.value)


@pytest.mark.redis
async def test_fan_out_queues_each_change_once_per_matching_hook(redis: Redis, settings: Settings) -> None:
    """A change read twice is queued once; a hook whose filter it fails, or whose incident is unknown, gets nothing."""
    await add_hook(redis, settings, "all", "https://a.example/h")
    await add_hook(redis, settings, "cordons", "https://b.example/h", where="type=cordon_updated")
    await add_hook(redis, settings, "london", "https://c.example/h", where="region=London")
    hooks = await HookRegistry(redis, settings.keys).all()
    changes = [(change("i_1", 1), "1700000000000-0"), (change("i_1", 2, EventType.cordon_updated), "1700000000000-1")]
    assert await fan_out(redis, settings.keys, hooks, changes, settings.stream_retention_s) == 3
    assert await fan_out(redis, settings.keys, hooks, changes, settings.stream_retention_s) == 0
    assert await redis.xlen(settings.keys.hook_queue("all")) == 2
    assert await redis.xlen(settings.keys.hook_queue("cordons")) == 1
    assert not await redis.exists(settings.keys.hook_queue("london"))
    await HookRegistry(redis, settings.keys).remove("all")
    assert await fan_out(redis, settings.keys, hooks, [(change("i_1", 3), "1700000000001-0")],
                         settings.stream_retention_s) == 0, "a hook removed since it was read gets nothing"
    assert not await redis.exists(settings.keys.hook_queue("all"))


async def test_the_fan_out_lets_changes_gather_after_a_small_batch(redis: Redis, settings: Settings) -> None:
    """After reading fewer changes than a batch, the notifier waits `notifier_batch_wait_ms` before reading again: a
    change written meanwhile stays unread until then, and is queued for the hook once it is over."""
    waiting = settings.model_copy(update={"notifier_batch_wait_ms": 3000})
    await add_hook(redis, waiting, "all", "https://a.example/h")
    async with running_stages(StageContext(waiting, redis), waiting.redis_url or "", ["notifier"]):
        await publish(redis, waiting, [change("i_1", 1)])
        await eventually(lambda: _notifier_backlog(redis, waiting, 0), what="the first change read")
        await publish(redis, waiting, [change("i_1", 2)])
        await asyncio.sleep(0.3)
        assert await _notifier_backlog(redis, waiting, 1), "read at once: the notifier did not wait"
        await eventually(lambda: _notifier_backlog(redis, waiting, 0), what="the second change read after the wait")
    assert await redis.xlen(waiting.keys.hook_queue("all")) == 2


async def _notifier_backlog(redis: Redis, settings: Settings, expected: int) -> bool:
    return (await backlog(redis, settings.keys, ["notifier"]))["notifier"] == expected
