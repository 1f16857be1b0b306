"""A Starlette app served by uvicorn on loopback inside the test's event loop, as the livedesk HTTP process serves
it (`services.web.http_server`)."""

from __future__ import annotations

import asyncio
import contextlib
import queue
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator

from starlette.applications import Starlette

from services.web import http_server


@contextlib.asynccontextmanager
async def serving(app: Starlette, on_stop: Callable[[], None] | None = None) -> AsyncIterator[str]:
    """Serve `app` on a loopback port of its own and yield its base URL (`http://127.0.0.1:PORT`); stop it on exit,
    calling `on_stop` first (uvicorn waits for open responses, so whatever ends them, e.g. `Console.stop`).

    The socket is bound before the server starts, so the URL is known and no other process can take the port.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = http_server(app, "127.0.0.1", port)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(10):
            while not server.started:
                if task.done():
                    task.result()  # it failed to start: raise why
                await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        if on_stop is not None:
            on_stop()
        server.should_exit = True
        async with asyncio.timeout(10):  # a server that does not stop is a failure, not a hung suite
            await asyncio.gather(task, return_exceptions=True)
        sock.close()


@contextlib.contextmanager
def served_in_thread(start: Callable[[], contextlib.AbstractAsyncContextManager[str]],
                     timeout_s: float = 30) -> Iterator[str]:
    """Enter `start()` (an async context manager that serves something and yields its URL) on an event loop in a
    thread of its own, and keep it served for as long as the block lasts: for a server that several tests share,
    whatever event loop each of them runs in."""
    handed: queue.Queue[str | BaseException] = queue.Queue()
    stop = threading.Event()

    async def main() -> None:
        try:
            async with start() as url:
                handed.put(url)
                await asyncio.to_thread(stop.wait)
        except BaseException as error:
            handed.put(error)
            raise

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="served-in-thread", daemon=True)
    thread.start()
    url = handed.get(timeout=timeout_s)
    if isinstance(url, BaseException):
        raise url
    try:
        yield url
    finally:
        stop.set()
        thread.join(timeout=timeout_s)
        assert not thread.is_alive(), "the shared server did not stop"
