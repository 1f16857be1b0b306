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


async def index(_: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


def page_routes() -> list[BaseRoute]:
    return [Route("/", index, methods=["GET"]), Mount("/static", app=StaticFiles(directory=STATIC_DIR),
                                                      name="console-static")]
