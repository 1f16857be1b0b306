"""The monitoring console (design.md §1: the read side): HTTP API, Server-Sent Events, the web page, `/metrics`.

It reads incident state and the streams; it writes nothing.
"""

from services.console.auth import check_console_binding
from services.console.routes import Console, build_console, build_console_app, build_console_routes

__all__ = ["Console", "build_console", "build_console_app", "build_console_routes", "check_console_binding"]
