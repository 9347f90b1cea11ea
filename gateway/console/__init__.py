"""The admin web console at `{admin.public_url}/console/` (contract §12): server-rendered pages
over the same service layer as the admin API (`admin.actions`).

Every page but sign-in needs a live session (`sessions.Sessions.current`); every POST must carry
the session's CSRF token. Pages are in `pages/`, one module per area.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.admin.actions import Actions
from gateway.console import web
from gateway.console.sessions import COOKIE, SIGN_IN_COOKIE, Session, Sessions, csrf_matches
from gateway.errors import AccessDenied, GatewayError, InvalidToken
from gateway.runtime import Runtime

Handler = Callable[[Request, Session, dict[str, str]], Awaitable[Response]]


class ConsoleApp:
    """What the page modules share: the runtime, the service layer, the sessions."""

    def __init__(self, runtime: Runtime, actions: Actions, base: str) -> None:
        self.runtime = runtime
        self.actions = actions
        self.base = base  # the console's path, e.g. /console or /admin/console
        self.sessions = Sessions(runtime, base + "/")

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}"

    def redirect(self, path: str) -> Response:
        return RedirectResponse(self.url(path), status_code=303)

    def signed_in(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """The page behind a live session; a POST also behind the session's CSRF token."""

        async def endpoint(request: Request) -> Response:
            request.scope["console_base"] = self.base
            session = await self.sessions.current(request)
            if session is None:
                if request.method != "GET":
                    raise InvalidToken("the console session has ended; sign in again", reason="missing")
                response = self.redirect("sign-in")
                if request.cookies.get(COOKIE):
                    self.sessions.clear_cookie(response, request, COOKIE)
                return response
            request.scope["console_session"] = session
            data: dict[str, str] = {}
            if request.method == "POST":
                data = await web.form(request)
                if not csrf_matches(session.csrf, data.get("csrf")):
                    raise AccessDenied("the form's CSRF token is missing or wrong; reload the page and retry")
            return await handler(request, session, data)

        return endpoint


def console_routes(runtime: Runtime) -> list[BaseRoute]:
    """The console's routes, to mount beside the admin API (under admin.public_url's path)."""
    from gateway.console.pages import access, clients, connections, identities, system

    base = urlsplit(runtime.config.admin_public_url).path.rstrip("/") + "/console"
    identity = runtime.identity
    console = ConsoleApp(
        runtime, Actions(identity.store, identity.directory, runtime.config.account_id), base
    )
    sessions = console.sessions

    async def sign_in_form(request: Request, error: str | None = None, status: int = 200) -> Response:
        request.scope["console_base"] = base
        token, fresh = sessions.sign_in_token(request)
        response = web.page(request, "sign_in.html", status=status, csrf=token, error=error)
        if fresh is not None:
            sessions.set_cookie(response, request, SIGN_IN_COOKIE, fresh, 3600)
        return response

    async def sign_in_page(request: Request) -> Response:
        request.scope["console_base"] = base
        if await sessions.current(request) is not None:
            return console.redirect("")
        return await sign_in_form(request)

    async def sign_in(request: Request) -> Response:
        request.scope["console_base"] = base
        data = await web.form(request)
        if not sessions.sign_in_csrf_ok(request, data.get("csrf")):
            return await sign_in_form(request, "The form expired; please try again.", 403)
        try:
            session_id = await sessions.sign_in(request, data.get("credential", ""))
        except GatewayError as exc:
            # The same words whether the key is unknown, revoked or malformed.
            message = (
                "That access key or client secret is not valid."
                if isinstance(exc, InvalidToken)
                else exc.description
            )
            return web.error_headers(await sign_in_form(request, message, exc.status), exc)
        response = console.redirect("")
        sessions.set_cookie(response, request, COOKIE, session_id, sessions.lifetime)
        sessions.clear_cookie(response, request, SIGN_IN_COOKIE)
        return response

    async def sign_out(request: Request, session: Session, data: dict[str, Any]) -> Response:
        await sessions.sign_out(session)
        response = console.redirect("sign-in")
        sessions.clear_cookie(response, request, COOKIE)
        return response

    routes: list[BaseRoute] = [
        Route("/sign-in", sign_in_page, methods=["GET"]),
        Route("/sign-in", sign_in, methods=["POST"]),
        Route("/sign-out", console.signed_in(sign_out), methods=["POST"]),
        *system.routes(console),
        *access.routes(console),  # before clients': /clients/{id}/permissions is not a credential kind
        *clients.routes(console),
        *identities.routes(console),
        *connections.routes(console),
        Mount("/static", app=StaticFiles(directory=web.HERE / "static"), name="static"),
    ]
    app = Starlette(routes=routes, exception_handlers=web.EXCEPTION_HANDLERS)
    app.add_middleware(web.SecurityHeaders)

    async def bare(request: Request) -> Response:
        return RedirectResponse(base + "/", status_code=308)

    return [Route("/console", bare, methods=["GET", "HEAD"]), Mount("/console", app=app)]
