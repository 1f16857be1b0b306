"""Full collections leave out what survived the one before, and look at everything again once per period."""

from __future__ import annotations

import gc
import weakref

import pytest

from services import cli
from services.heap import SurvivorFreezer, frozen_survivors
from services.settings import Settings


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> tuple[_Node, weakref.ref[_Node]]:
    """Two objects that refer to each other: only the cyclic collector can free them once unreferenced."""
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return a, weakref.ref(b)


def test_the_objects_alive_at_the_start_and_a_full_collections_survivors_are_frozen() -> None:
    before = gc.get_freeze_count()
    with frozen_survivors():
        at_start = gc.get_freeze_count()
        assert at_start > before  # the imports and everything else alive: left out from now on
        kept = [[n] for n in range(5000)]  # containers, tracked by the collector
        gc.collect(1)
        assert gc.get_freeze_count() == at_start, "a younger collection freezes nothing"
        gc.collect()
        assert gc.get_freeze_count() >= at_start + len(kept)
    assert gc.get_freeze_count() == 0, "everything is thawed on the way out"
    assert _hooks() == 0


def test_frozen_objects_are_still_freed_by_reference_counting() -> None:
    with frozen_survivors():
        node = _Node()
        gone = weakref.ref(node)
        gc.collect()
        del node
        assert gone() is None


def test_cyclic_garbage_among_frozen_objects_is_freed_at_the_first_full_collection_of_the_next_period() -> None:
    now = [0.0]
    with frozen_survivors(thaw_every_s=60, clock=lambda: now[0]) as freezer:
        head, tail = _cycle()
        gc.collect()  # the cycle survives, referenced: frozen
        del head
        gc.collect()
        assert tail() is not None, "frozen, the unreferenced cycle is left alone within the period"
        assert freezer.full_passes == 0
        now[0] = 59.0
        gc.collect(1)
        assert tail() is not None
        now[0] = 60.0
        gc.collect(1)  # not a full collection: nothing is thawed for it
        assert tail() is not None
        assert freezer.full_passes == 0
        gc.collect()
        assert tail() is None, "the period over, the full collection looked at everything"
        assert freezer.full_passes == 1
        head, tail = _cycle()
        gc.collect()
        del head
        gc.collect()
        assert tail() is not None, "a new period: survivors are frozen again"
        del tail


def test_stage_processes_run_with_survivors_frozen(monkeypatch: pytest.MonkeyPatch) -> None:
    """`livedesk run` and `livedesk worker` run their stages inside `frozen_survivors`."""
    hooked_while_running: list[int] = []

    class App:
        async def run(self) -> None:
            hooked_while_running.append(_hooks())

    monkeypatch.setattr("services.app.build_app", lambda settings, url, stages: App())
    cli._serve(Settings(_env_file=None, redis_url="redis://127.0.0.1:9/0"), ["dedup"])
    assert hooked_while_running == [1]
    assert _hooks() == 0


def _hooks() -> int:
    return sum(1 for hook in gc.callbacks if isinstance(hook, SurvivorFreezer))
