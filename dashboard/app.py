"""The web side: one page, its live feed (server-sent events), its data and its four actions, behind the token.

Routes (every one needs the token: the ``X-Dashboard-Token`` header, a ``token`` query parameter, or the cookie
the page sets when opened through the printed link; anything else is 401):

- ``GET /`` the page; ``GET /static/plotly.min.js`` the charting library from the installed ``plotly`` package
  (no CDN: the page works offline);
- ``GET /api/state`` the collector's newest snapshot, ``GET /api/charts`` the chart series;
- ``GET /events`` the snapshot as a server-sent event stream, one event per new snapshot;
- ``POST /api/command`` ``{"action": HALT|CANCEL_ALL|FLATTEN|KILL_NOW, "confirm": <the same word>}``: the page asks
  the person to confirm, and the server refuses a request whose ``confirm`` differs (a stray request cannot act).
  POSTs need the header (not the cookie), so another site's form in the same browser cannot trigger one.

No route removes a kill flag: that stays an operator's shell action (README, "Kill switch").
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from dashboard.collector import Collector
from dashboard.engine_link import ACTIONS, OPERATOR_VERBS, EngineLink
from dashboard.token import token_matches

log = logging.getLogger(__name__)

COOKIE = "dashboard_token"
HEADER = "X-Dashboard-Token"
PAGE = Path(__file__).with_name("page.html")
NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"}


@cache
def plotly_js() -> tuple[bytes, bytes]:
    """plotly.js as bundled in the installed ``plotly`` package (the one the backtest report embeds): (plain, gzip).

    Compressed once: 4.6 MB of script shrinks to ~1.4 MB, and the first page load is not spent on either step.
    """
    from plotly.offline import get_plotlyjs

    plain = get_plotlyjs().encode()
    return plain, gzip.compress(plain, compresslevel=6)


def build_app(collector: Collector, link: EngineLink, token: str, *, command_timeout_s: float,
              refresh_s: float, stopping: threading.Event) -> FastAPI:  # fmt: skip
    """The FastAPI application; ``collector`` runs on its own thread (started by the caller). plotly.js is read and
    compressed on a thread when the page is first asked for (not at start, when the engine is starting too), so
    the page's later request for it finds it ready. ``stopping`` set ends the event streams (a server shutting
    down waits for open responses, and an open page's stream would otherwise never end)."""
    warm = threading.Thread(target=plotly_js, name="dashboard-plotly-warm", daemon=True)
    warm_lock = threading.Lock()
    app = FastAPI(title="ibkr-event-trader dashboard", docs_url=None, redoc_url=None, openapi_url=None)

    def require(request: Request, *, header_only: bool = False) -> None:
        given = request.headers.get(HEADER)
        if given is None and not header_only:
            given = request.query_params.get("token") or request.cookies.get(COOKIE)
        if not token_matches(token, given):
            raise HTTPException(status_code=401, detail="a valid dashboard token is required: open the link that "
                                "./run_system.sh printed (the token is in dashboard.token_path)")  # fmt: skip

    @app.get("/", response_class=HTMLResponse)
    def page(request: Request) -> Response:
        require(request)
        with warm_lock:
            if warm.ident is None:
                warm.start()
        response = HTMLResponse(PAGE.read_text(encoding="utf-8"), headers=NO_STORE)
        response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/static/plotly.min.js")
    def plotly(request: Request) -> Response:
        require(request)
        plain, packed = plotly_js()
        headers = {"Cache-Control": "private, max-age=86400", "Vary": "Accept-Encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            headers["Content-Encoding"] = "gzip"
            return Response(packed, media_type="application/javascript", headers=headers)
        return Response(plain, media_type="application/javascript", headers=headers)

    @app.get("/api/state")
    def state(request: Request) -> JSONResponse:
        require(request)
        return JSONResponse(collector.latest(), headers=NO_STORE)

    @app.get("/api/charts")
    def charts(request: Request) -> JSONResponse:
        require(request)
        return JSONResponse(collector.charts(), headers=NO_STORE)

    @app.get("/events")
    async def events(request: Request) -> StreamingResponse:
        require(request)
        return StreamingResponse(_event_stream(request, collector, refresh_s, stopping), media_type="text/event-stream",
                                 headers={**NO_STORE, "X-Accel-Buffering": "no"})  # fmt: skip

    _add_command_route(app, require, collector, link, command_timeout_s)
    return app


def _add_command_route(app: FastAPI, require: Callable[..., None], collector: Collector, link: EngineLink,
                       command_timeout_s: float) -> None:  # fmt: skip
    """``POST /api/command`` (see the module docstring): checked, sent, logged, the reply folded into the page."""

    @app.post("/api/command")
    async def command(request: Request) -> JSONResponse:
        require(request, header_only=True)
        body = await _json_body(request)
        action, confirm = body.get("action"), body.get("confirm")
        if action not in ACTIONS:
            raise HTTPException(status_code=400, detail=f"action must be one of {list(ACTIONS)} (got {action!r})")
        if confirm != action:
            raise HTTPException(status_code=400, detail=f"confirm must repeat the action {action!r} (got {confirm!r})")
        reason = str(body.get("reason") or "from the dashboard")[:200]
        log.warning("event=dashboard_action action=%s reason=%r", action, reason)
        if action in OPERATOR_VERBS:
            result = await run_in_threadpool(link.send, action, command_timeout_s, reason)
        else:
            result = await run_in_threadpool(link.kill_now, reason)
        log.warning("event=dashboard_action_result action=%s ok=%s code=%s", action, result["ok"], result["code"])
        if result["ok"] and result["data"].get("state"):
            await run_in_threadpool(collector.note_status, result["data"])
        return JSONResponse({"action": action, **{k: result[k] for k in ("ok", "code", "message")}})


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HTTPException(status_code=400, detail=f"body must be a JSON object ({exc})") from exc
    if not isinstance(body, dict):
        raise HTTPException(status_code=400, detail="body must be a JSON object")
    return body


async def _event_stream(request: Request, collector: Collector, refresh_s: float,
                        stopping: threading.Event) -> AsyncIterator[str]:  # fmt: skip
    """One ``data:`` event per new snapshot, checked twice per refresh; ends when the browser goes away or the
    server stops (the page's EventSource then retries every second and shows "feed lost")."""
    sent = -1
    yield "retry: 1000\n\n"
    while not stopping.is_set() and not await request.is_disconnected():
        snapshot = collector.latest()
        if snapshot.get("version", 0) != sent:
            sent = snapshot.get("version", 0)
            yield f"data: {json.dumps(snapshot, separators=(',', ':'), default=str)}\n\n"
        await asyncio.sleep(refresh_s / 2)
