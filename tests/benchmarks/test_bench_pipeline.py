"""The pipeline load test's quick mode runs to the end on a real server and accounts for every entry it wrote."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from services.names import Keys
from tests.benchmarks import bench_pipeline

pytestmark = pytest.mark.redis


async def test_quick_mode_accounts_for_every_entry(redis_url: str, key_prefix: str, redis: Redis,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Every raw entry of the quick run became an update or a counted repeat, every stage drained, every change was
    queued once for the hook, nothing was dead-lettered, nothing is left under its prefix, and the figures print."""
    quick = bench_pipeline.QUICK
    result = await bench_pipeline.run(redis_url, key_prefix, warm=int(quick["warm"]), burst=int(quick["burst"]),
                                      rate=quick["rate"], steady_s=quick["steady_s"], corpus=None, timeout_s=90,
                                      reclaim_idle_ms=2000, capacity=(0.5,))
    [swept] = result.capacity
    written = int(quick["warm"] + quick["burst"] + quick["rate"] * quick["steady_s"]) + swept.entries
    accounts = result.accounts
    assert sum(result.mix.values()) == written
    assert [phase.entries for phase in result.phases] == [quick["warm"], quick["burst"],
                                                          quick["rate"] * quick["steady_s"]]
    assert all(phase.drained for phase in result.phases + result.relay + result.capacity)
    # The capacity phase was written at half the burst's rate, for as long as the steady phase.
    assert swept.offered == pytest.approx(result.phases[1].rate * 0.5)
    assert swept.entries == int((swept.offered or 0) * quick["steady_s"])
    assert swept.latency_ms
    assert accounts.raw == written
    assert accounts.updates + accounts.repeats == written
    assert accounts.repeats >= result.mix["repeat"]  # every entry served again unchanged was dropped as a repeat
    assert accounts.verdicts["new"] >= result.mix["first"]
    assert accounts.verdicts["revision"] > 0
    assert accounts.verdicts["duplicate"] > 0
    assert accounts.backlog == {"dedup": 0, "tracker": 0, "notifier": 0}
    assert accounts.dead_letters == 0
    assert accounts.changes > 0
    assert accounts.queued == accounts.changes
    assert accounts.complete
    # Latency is measured for the entries that changed an incident, and the relay moved every entry it was given.
    assert result.phases[1].latency_ms
    assert result.phases[2].latency_ms
    assert [phase.entries for phase in result.relay] == [quick["burst"], quick["rate"] * quick["steady_s"]]
    assert len(result.relay[0].latency_ms) == quick["burst"]
    left = [key async for key in redis.scan_iter(match=Keys(key_prefix).everything)]
    assert left == [], "the run deletes every key it wrote, the relay's streams too"
    bench_pipeline.report(result)
    printed = capsys.readouterr().out
    assert "every entry accounted for" in printed
    assert "pipeline / relay" in printed
    assert "capacity  50% of burst" in printed


def _steady(offered: float, latency_ms: list[float], behind: bool = False) -> bench_pipeline.Phase:
    return bench_pipeline.Phase("steady", entries=int(offered * 10), writing_s=10.0, latency_ms=latency_ms,
                                behind=behind, offered=offered)


def test_capacity_is_the_highest_rate_up_to_which_every_rate_held_the_p99_target() -> None:
    prompt, slow = [10.0] * 200, [10.0] * 190 + [500.0] * 10
    assert bench_pipeline.capacity_at_target([_steady(80, prompt), _steady(40, prompt), _steady(120, slow)]) == 80
    # A faster rate that held after a slower one that did not is luck, not capacity.
    assert bench_pipeline.capacity_at_target([_steady(40, prompt), _steady(80, slow), _steady(120, prompt)]) == 40
    assert bench_pipeline.capacity_at_target([_steady(40, slow), _steady(80, prompt)]) is None
    # A phase stopped early (its backlog grew too long) did not hold, whatever the latency of what it measured.
    assert bench_pipeline.capacity_at_target([_steady(40, prompt), _steady(80, prompt, behind=True)]) == 40
    assert bench_pipeline.capacity_at_target([_steady(40, [])]) is None  # nothing measured, nothing held
