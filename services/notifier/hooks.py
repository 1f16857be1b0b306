"""The webhook rules: the registry in Redis that every notifier shares (`Keys.hooks`: hook id → `Hook` JSON), the
`[[hook]]` tables of `LIVEDESK_HOOKS_FILE`, and new hooks made from the command line."""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from redis.asyncio import Redis

from schemas.subscriptions import Hook
from services.errors import ConfigurationError
from services.filters import FilterSyntaxError, parse_where
from services.names import Keys
from services.settings import Settings
from services.wire import as_text

_FILE_KEYS = frozenset({"id", "url", "where", "format", "secret", "secret_env", "coalesce_s", "max_age_s",
                        "timeout_s"})


def generate_secret() -> str:
    """A fresh signing secret: 32 random bytes, URL-safe text."""
    return secrets.token_urlsafe(32)


def make_hook(settings: Settings, fields: Mapping[str, Any]) -> Hook:
    """A Hook from `fields` (`Hook`'s names; `id` for `hook_id`; `where` as a filter, a `--where` text or a table),
    with the settings' defaults for timeout, max age and coalescing. Raises ValueError (FilterSyntaxError or
    ValidationError) naming what is wrong."""
    values = dict(fields)
    if "id" in values:
        values["hook_id"] = values.pop("id")
    where = values.get("where")
    if isinstance(where, str):
        values["where"] = parse_where(where)
    values.setdefault("timeout_s", settings.hook_timeout_s)
    values.setdefault("max_age_s", settings.hook_max_age_s)
    values.setdefault("coalesce_s", settings.hook_coalesce_s)
    values.setdefault("created_at", datetime.now(UTC))
    return Hook.model_validate(values)


def _first_problem(error: ValueError) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'hook'}: {first['msg']}"
    return str(error)


def load_hooks_file(path: Path, settings: Settings) -> list[Hook]:
    """The hooks of a TOML file of `[[hook]]` tables (id, url, where, format, secret or secret_env, coalesce_s,
    max_age_s, timeout_s). Raises ConfigurationError naming the file and the hook at the first problem."""
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigurationError(f"hooks file {path}: {error}") from error
    tables = document.get("hook", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigurationError(f"hooks file {path}: expected [[hook]] tables")
    hooks: dict[str, Hook] = {}
    for number, table in enumerate(tables, start=1):
        name = f"hook {table.get('id', f'#{number}')!s}"
        if unknown := sorted(set(table) - _FILE_KEYS):
            raise ConfigurationError(f"hooks file {path}, {name}: unknown key(s) {', '.join(unknown)}")
        fields = dict(table)
        if env := fields.pop("secret_env", None):
            if "secret" in fields:
                raise ConfigurationError(f"hooks file {path}, {name}: give secret or secret_env, not both")
            if not os.environ.get(str(env)):
                raise ConfigurationError(f"hooks file {path}, {name}: secret_env {env} is not set")
            fields["secret"] = os.environ[str(env)]
        if "secret" not in fields:
            raise ConfigurationError(f"hooks file {path}, {name}: needs a secret (or secret_env), 16 characters "
                                     "or more")
        try:
            hook = make_hook(settings, fields)
        except (ValueError, FilterSyntaxError) as error:
            raise ConfigurationError(f"hooks file {path}, {name}: {_first_problem(error)}") from error
        if hook.hook_id in hooks:
            raise ConfigurationError(f"hooks file {path}, {name}: id used twice")
        hooks[hook.hook_id] = hook
    return list(hooks.values())


class HookRegistry:
    """The hooks every notifier shares, in one Redis hash."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def all(self) -> list[Hook]:
        """Every hook, by id. A stored value that no longer parses is skipped (and named by `broken`)."""
        hooks, _ = await self.read()
        return hooks

    async def read(self) -> tuple[list[Hook], list[str]]:
        """Every hook that parses, by id, and the ids of those that do not."""
        stored = await self._redis.hgetall(self._keys.hooks)
        hooks: list[Hook] = []
        broken: list[str] = []
        for hook_id, data in sorted(stored.items()):
            try:
                hooks.append(Hook.model_validate_json(data))
            except ValueError:
                broken.append(as_text(hook_id))
        return hooks, broken

    async def get(self, hook_id: str) -> Hook | None:
        data = await self._redis.hget(self._keys.hooks, hook_id)
        return None if data is None else Hook.model_validate_json(data)

    async def upsert(self, hooks: Iterable[Hook]) -> None:
        """Add or replace hooks by id; a replaced hook keeps its queue (what it was still to send)."""
        mapping = {hook.hook_id: hook.model_dump_json() for hook in hooks}
        if mapping:
            await self._redis.hset(self._keys.hooks, mapping=mapping)  # type: ignore[arg-type]  # str values

    async def remove(self, hook_id: str) -> bool:
        """Remove a hook with its queue, fan-out markers and unsent index; False when there was no such hook."""
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hdel(self._keys.hooks, hook_id)
            pipe.delete(self._keys.hook_queue(hook_id), fanned_out_key(self._keys, hook_id),
                        unsent_key(self._keys, hook_id))
            removed, _ = await pipe.execute()
        return bool(removed)


def fanned_out_key(keys: Keys, hook_id: str) -> str:
    """Sorted set: the `changes` entry ids already queued for a hook, scored by when (ms), so a change read
    twice is queued once. Kept next to the hook's queue (`Keys.hook_queue`)."""
    return keys.hook_queue(hook_id).removesuffix(":queue") + ":fanned-out"


def unsent_key(keys: Keys, hook_id: str) -> str:
    """Sorted set, by name (all scores 0): one `unsent_member` per event on a hook's queue not yet delivered, so a
    deliverer finds whether an earlier event of an incident is still to go. Added with the queue entry (same
    script), removed with its acknowledgement (same transaction). Kept next to the hook's queue (`Keys.hook_queue`)."""
    return keys.hook_queue(hook_id).removesuffix(":queue") + ":unsent"


def unsent_prefix(incident_id: str, version: int) -> str:
    """What every `unsent_key` member of an incident's event of `version` starts with: members sort by incident,
    then version."""
    return f"{incident_id}\x00{version:010d}\x00"


def unsent_member(incident_id: str, version: int, entry_id: str) -> str:
    """The `unsent_key` member of the queue entry `entry_id`, an event of `incident_id` at `version`."""
    return unsent_prefix(incident_id, version) + entry_id
