"""Hook rules: the TOML file, the shared registry, and the idempotent fan-out to hook queues."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from schemas import EventType
from schemas.subscriptions import HookFormat
from services.errors import ConfigurationError
from services.notifier.hooks import HookRegistry, load_hooks_file
from services.notifier.stage import fan_out
from services.settings import Settings
from tests.services.notifier.conftest import add_hook, change


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
