"""Parsing in parser processes, under limits: `parse_feed` with each document's CPU time and memory bounded by the
kernel, for documents from the network (`parse_feed_bounded`)."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import multiprocessing.context
import resource
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any, cast

from services.errors import FeedError
from services.poller.parse import OUT_OF_MEMORY, ParsedFeed, parse_feed

# What one document may cost a parser process. feedparser has paths that are quadratic in the size of one field (an
# unclosed comment or a long style attribute in markup, a long author): a 10 MB body could take hours. A parser
# process that goes past its CPU time is killed by the kernel, so no document can hold a parser for longer.
PARSE_CPU_S = 10
PARSE_CPU_S_PER_MB = 4  # a 10 MB feed of full articles takes about 15 s
PARSE_MEMORY_BYTES = 256 * 2**20
PARSE_MEMORY_PER_BODY_BYTE = 32  # feedparser holds about 20 bytes per byte of a markup-heavy body at its peak
_PARSER_PROCESSES = 4


def _address_space() -> int:
    """This process's virtual memory size in bytes (Linux); 0 where it cannot be read."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * resource.getpagesize()
    except (OSError, ValueError, IndexError):
        return 0


def _limit(cpu_s: int, memory_bytes: int) -> None:
    """Limit what the coming parse may use: CPU seconds from now, and address space above what is mapped now."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    soft = math.ceil(usage.ru_utime + usage.ru_stime) + cpu_s
    resource.setrlimit(resource.RLIMIT_CPU, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
    if (mapped := _address_space()) > 0:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        soft = mapped + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))


def _unlimit_memory() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (hard, hard))


def _serve(connection: Connection) -> None:
    """A parser process: parse each document that arrives and answer, until the pipe closes.

    Answers are `("parsed", ParsedFeed)`, `("refused", reason)` (a FeedError), `("memory", "")` (past the memory
    limit; the process then ends, as nothing is trustworthy after a MemoryError) or `("crashed", description)` (a bug).
    Past its CPU limit the kernel ends the process with SIGXCPU; there is no answer then.
    """
    # Killed for its CPU time, a parser leaves no core file behind.
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    while True:
        try:
            body, feed, content_type, base_url, cpu_s, memory_bytes = connection.recv()
        except (EOFError, OSError):
            return
        _limit(cpu_s, memory_bytes)
        answer: tuple[str, Any]
        try:
            answer = ("parsed", parse_feed(body, feed=feed, content_type=content_type, base_url=base_url))
        except FeedError as error:
            answer = ("memory", "") if error.reason == OUT_OF_MEMORY else ("refused", error.reason)
        except MemoryError:
            answer = ("memory", "")
        except Exception as error:
            answer = ("crashed", f"{type(error).__name__}: {error}")
        del body
        _unlimit_memory()
        connection.send(answer)
        if answer[0] == "memory":
            return


_Context = multiprocessing.context.ForkServerContext | multiprocessing.context.SpawnContext


class _Parser:
    """One parser process and the parent's end of its pipe."""

    def __init__(self, context: _Context, name: str) -> None:
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), name=name, daemon=True)
        self.process.start()
        child.close()

    def stop(self) -> None:
        self.connection.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


class ParserPool:
    """Parser processes that run `parse_feed` with each document's CPU time and memory bounded.

    A document that would take more is a `FeedError` for its feed, and the process that was parsing it is replaced;
    the other documents, parsed by the other processes, never notice. Parsing off the poller's process also keeps a
    long parse from holding its interpreter lock. Processes start when first needed, at most `processes` of them;
    callers beyond that wait for one to be free. `parse` blocks: call it from a thread (`parse_feed_bounded` does).
    """

    def __init__(
        self,
        processes: int = _PARSER_PROCESSES,
        *,
        cpu_s: float = PARSE_CPU_S,
        cpu_s_per_mb: float = PARSE_CPU_S_PER_MB,
        memory_bytes: int = PARSE_MEMORY_BYTES,
        memory_per_body_byte: int = PARSE_MEMORY_PER_BODY_BYTE,
    ) -> None:
        self._most = processes
        self._cpu_s, self._cpu_s_per_mb = cpu_s, cpu_s_per_mb
        self._memory_bytes, self._memory_per_body_byte = memory_bytes, memory_per_body_byte
        methods = multiprocessing.get_all_start_methods()
        # forkserver: a clean single-threaded parent for every parser, whatever threads this process runs.
        self._context: _Context = (multiprocessing.get_context("forkserver") if "forkserver" in methods
                                   else multiprocessing.get_context("spawn"))
        self._idle: list[_Parser] = []
        self._running: set[_Parser] = set()
        self._free = threading.Condition()
        self._closed = False

    def limits(self, size: int) -> tuple[int, int]:
        """CPU seconds and bytes of memory a document of `size` bytes may use."""
        cpu_s = math.ceil(self._cpu_s + self._cpu_s_per_mb * size / 1e6)
        return cpu_s, self._memory_bytes + self._memory_per_body_byte * size

    def parse(self, body: bytes, *, feed: str, content_type: str | None = None,
              base_url: str | None = None) -> ParsedFeed:
        """`parse_feed(body, ...)` in a parser process; the same result, or `FeedError`.

        Raises:
            FeedError: the document is not a usable feed, or parsing it went past the CPU or memory limit.
            RuntimeError: `parse_feed` failed with anything but FeedError (a bug), or the pool is closed.
        """
        cpu_s, memory_bytes = self.limits(len(body))
        parser = self._take()
        answer: tuple[str, Any] | None = None
        try:
            parser.connection.send((body, feed, content_type, base_url, cpu_s, memory_bytes))
            # The kernel enforces the CPU limit; this bounds the wait even where it cannot (a busy machine stretches
            # CPU seconds into more wall seconds, so it is generous).
            if parser.connection.poll(10 * cpu_s + 60):
                answer = parser.connection.recv()
        except (EOFError, OSError):
            answer = None
        finally:
            self._give_back(parser, healthy=answer is not None and answer[0] != "memory")
        if answer is None:
            if self._closed:
                raise RuntimeError("the parser pool was closed while parsing")
            raise FeedError(feed, self._death(parser, cpu_s))
        kind, value = answer
        if kind == "parsed":
            return cast(ParsedFeed, value)
        if kind == "refused":
            raise FeedError(feed, value)
        if kind == "memory":
            raise FeedError(feed, f"refused: parsing it needed more than {memory_bytes // 2**20} MB")
        raise RuntimeError(f"parse_feed failed on feed {feed}: {value}")

    @staticmethod
    def _death(parser: _Parser, cpu_s: int) -> str:
        code = parser.process.exitcode
        if code == -signal.SIGXCPU:
            return f"refused: parsing it took more than {cpu_s} s of CPU"
        if code is None or code == -signal.SIGKILL:
            return f"refused: parsing it did not finish in {10 * cpu_s + 60} s"
        return f"the parser process died while parsing it (exit code {code})"

    def _take(self) -> _Parser:
        with self._free:
            while not self._idle and len(self._running) >= self._most and not self._closed:
                self._free.wait()
            if self._closed:
                raise RuntimeError("the parser pool is closed")
            if self._idle:
                return self._idle.pop()
            parser = _Parser(self._context, f"livedesk-parser-{len(self._running) + 1}")
            self._running.add(parser)
            return parser

    def _give_back(self, parser: _Parser, healthy: bool) -> None:
        """Return a parser that is ready for more; one that is not (dead, or past its memory) is stopped."""
        with self._free:
            keep = healthy and not self._closed
            if keep:
                self._idle.append(parser)
            else:
                self._running.discard(parser)
            self._free.notify()
        if not keep:
            parser.stop()

    @property
    def processes(self) -> list[multiprocessing.process.BaseProcess]:
        """The parser processes started and not stopped."""
        with self._free:
            return [parser.process for parser in self._running]

    def close(self) -> None:
        """Stop every parser process, busy ones included (their callers get RuntimeError)."""
        with self._free:
            self._closed = True
            running, self._running, self._idle = self._running, set(), []
            self._free.notify_all()
        for parser in running:
            parser.stop()


_default_pool: ParserPool | None = None
_default_pool_lock = threading.Lock()


async def parse_feed_bounded(body: bytes, *, feed: str, content_type: str | None = None,
                             base_url: str | None = None) -> ParsedFeed:
    """`parse_feed` in a parser process, with the document's CPU time and memory bounded (`ParserPool`).

    For documents from the network: whatever a document does to the parser, it costs at most its limits, and only
    its own feed gets the error.
    """
    global _default_pool
    with _default_pool_lock:
        if _default_pool is None:
            _default_pool = ParserPool()
    return await asyncio.to_thread(_default_pool.parse, body, feed=feed, content_type=content_type, base_url=base_url)
