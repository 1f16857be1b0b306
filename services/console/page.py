"""The web page: static HTML, CSS and JavaScript from `static/`, no build step.

The page itself holds no data, so it is served without the token; everything it shows comes from the API and
`/events`, which require the token when one is configured (the page asks for it once and keeps it in
sessionStorage).
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


# Everything the page uses comes from the console itself; feed text it shows can never run as script or load
# anything from elsewhere.
_PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def index(_: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers=_PAGE_HEADERS)


def page_routes() -> list[BaseRoute]:
    return [Route("/", index, methods=["GET"]), Mount("/static", app=StaticFiles(directory=STATIC_DIR),
                                                      name="console-static")]
