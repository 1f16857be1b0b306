"""`livedesk hooks …` and `livedesk deadletter …` against a real Redis, with a real receiver for `hooks test`."""

from __future__ import annotations

import asyncio
import json
import re

import pytest
from redis.asyncio import Redis
from typer.testing import CliRunner

from services.cli import cli
from services.notifier.signing import verify
from services.settings import Settings
from services.stage import dead_letter
from tests.services.notifier.conftest import change
from tests.support.receivers import Receiver, Reply
from tests.support.waiting import eventually

pytestmark = pytest.mark.redis


async def livedesk(settings: Settings, *args: str) -> tuple[int, str]:
    env = {"LIVEDESK_REDIS_URL": settings.redis_url or "", "LIVEDESK_KEY_PREFIX": settings.key_prefix}
    result = await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)
    return result.exit_code, result.output


async def test_hooks_add_list_test_remove(redis: Redis, settings: Settings) -> None:
    """add prints the generated secret once; list never shows it; test sends a signed sample; remove removes."""
    with Receiver(script=[Reply(200)], then=Reply(404)) as receiver:
        code, out = await livedesk(settings, "hooks", "add", receiver.url, "--id", "ops", "--types",
                                   "condition_updated", "--where", "region=London", "--format", "slack",
                                   "--coalesce-s", "10")
        assert code == 0, out
        secret = re.search(r"secret \(shown once\): (\S+)", out)
        assert secret is not None
        code, out = await livedesk(settings, "hooks", "list", "--json")
        assert code == 0, out
        [row] = [json.loads(line) for line in out.splitlines()]
        assert row["hook_id"] == "ops"
        assert row["where_text"] == "type=condition_updated region=London"
        assert row["format"] == "slack"
        assert secret.group(1) not in out
        assert "secret" not in row
        code, out = await livedesk(settings, "hooks", "test", "ops")
        assert (code, "status 200 ok" in out) == (0, True), out
        # The receiver records a request once its answer is sent: the command may have read the answer first.
        await eventually(lambda: len(receiver.requests) == 1, what="the sample request recorded")
        [request] = receiver.requests
        assert verify(secret.group(1), request.headers["x-livedesk-timestamp"], request.body,
                      request.headers["x-livedesk-signature"])
        assert "text" in json.loads(request.body)
        code, out = await livedesk(settings, "hooks", "test", "ops")
        assert code == 1
        assert "status 404 permanent" in out
    assert (await livedesk(settings, "hooks", "remove", "ops"))[0] == 0
    assert (await livedesk(settings, "hooks", "remove", "ops"))[0] == 2
    assert (await livedesk(settings, "hooks", "list"))[1] == ""


async def test_a_bad_filter_is_refused(settings: Settings) -> None:
    """hooks add with a filter that does not parse adds nothing and says which term is wrong."""
    code, out = await livedesk(settings, "hooks", "add", "https://x.example/h", "--where", "colour=red")
    assert code == 2
    assert "colour=red" in out


async def test_deadletter_list_show_and_hooks_redeliver(redis: Redis, settings: Settings) -> None:
    """A webhook dead letter is listed and shown, and redeliver puts it back on its hook's queue."""
    assert (await livedesk(settings, "hooks", "add", "https://x.example/h", "--id", "ops"))[0] == 0
    queue = settings.keys.hook_queue("ops")
    await redis.xadd(queue, {"__data__": change("i_1", 1).model_dump_json()})
    await redis.xgroup_create(queue, "deliver", id="0")
    read = await redis.xreadgroup("deliver", "c", {queue: ">"})
    assert isinstance(read, list)
    [[_, [(entry_id, fields)]]] = read
    await dead_letter(redis, settings.keys, queue, "deliver", entry_id, fields[b"__data__"], RuntimeError("gone"),
                      deliveries=4, fields={"hook_id": "ops"})
    await redis.xdel(queue, entry_id)
    code, out = await livedesk(settings, "deadletter", "list", "--json")
    [row] = [json.loads(line) for line in out.splitlines()]
    assert (code, row["hook_id"], row["error"]) == (0, "ops", "RuntimeError: gone")
    code, out = await livedesk(settings, "deadletter", "show", row["dead_letter_id"])
    assert code == 0
    assert json.loads(json.loads(out)["payload"])["event_id"] == "i_1-v1"
    code, out = await livedesk(settings, "hooks", "redeliver", "--hook", "ops")
    assert code == 0
    assert "1 re-queued" in out
    assert await redis.xlen(settings.keys.deadletter) == 0
    assert await redis.xlen(queue) == 1
