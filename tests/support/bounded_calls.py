"""Calls to one function made in a child process under a CPU-time limit per call, so that a fuzz test can tell a
slow input from a hang and never hangs itself: the kernel stops a call that goes past its limit (SIGXCPU), even
inside a regular expression that never returns to Python.

The same mechanism the poller's ParserPool uses for documents, for any importable function of plain arguments.
"""

from __future__ import annotations

import importlib
import math
import multiprocessing
import multiprocessing.context
import resource
import signal
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What one call did: returned `value`, raised `error` ("Type: message"), or went past its limit (`over_limit`)."""

    value: Any = None
    error: str | None = None
    over_limit: bool = False


def _serve(connection: Connection, target: str) -> None:
    module, _, name = target.partition(":")
    function = getattr(importlib.import_module(module), name)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    while True:
        try:
            args, cpu_s = connection.recv()
        except (EOFError, OSError):
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        _, hard = resource.getrlimit(resource.RLIMIT_CPU)
        resource.setrlimit(resource.RLIMIT_CPU, (math.ceil(usage.ru_utime + usage.ru_stime) + cpu_s, hard))
        try:
            connection.send(Outcome(value=function(*args)))
        except Exception as error:
            connection.send(Outcome(error=f"{type(error).__name__}: {error}"))


class BoundedCalls:
    """Calls `target` ("package.module:function") in a child process, each call allowed `cpu_s` of CPU time.

    A call past its limit gives `Outcome(over_limit=True)` and the child is replaced for the next call. Use as a
    context manager; the child is stopped at the end.
    """

    def __init__(self, target: str, cpu_s: int) -> None:
        self._target, self._cpu_s = target, cpu_s
        methods = multiprocessing.get_all_start_methods()
        self._context: multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext = (
            multiprocessing.get_context("forkserver") if "forkserver" in methods
            else multiprocessing.get_context("spawn"))
        self._child: tuple[Connection, multiprocessing.process.BaseProcess] | None = None

    def __enter__(self) -> BoundedCalls:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _start(self) -> tuple[Connection, multiprocessing.process.BaseProcess]:
        if self._child is None:
            parent, child = self._context.Pipe()
            process = self._context.Process(target=_serve, args=(child, self._target), daemon=True)
            process.start()
            child.close()
            self._child = (parent, process)
        return self._child

    def _stop(self) -> None:
        if self._child is not None:
            connection, process = self._child
            connection.close()
            process.kill()
            process.join(10)
            self._child = None

    def __call__(self, *args: Any) -> Outcome:
        connection, process = self._start()
        connection.send((args, self._cpu_s))
        # The kernel enforces the limit; the wait is bounded anyway in case the machine is very busy.
        if connection.poll(20 * self._cpu_s + 30):
            try:
                outcome: Outcome = connection.recv()
                return outcome
            except (EOFError, OSError):
                pass
        self._stop()
        process.join(10)
        if process.exitcode not in (-signal.SIGXCPU, -signal.SIGKILL):
            return Outcome(error=f"the child process died (exit code {process.exitcode})")
        return Outcome(over_limit=True)
