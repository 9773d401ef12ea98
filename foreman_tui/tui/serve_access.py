"""Who may use ``foreman serve``: every request (the page, its scripts and fonts, the websocket) passes this guard.

A browser session drives foreman, and foreman runs agents and commands as the person who started it, so:

- On a loopback address without a token, only this machine's browsers reach the port, but any web page open in
  one of them could try: the ``Host`` must be a loopback name (a page of another site that rebinds its DNS name to
  127.0.0.1 sends its own name) and a websocket's ``Origin`` must be the page's own (a websocket is not held to the
  same-origin rule; without this, any site could open one to localhost).
- With a token (any other address, or ``--token``), every request carries it: the URL's ``?token=`` once, then a
  cookie the page gets with it (HttpOnly, SameSite=Strict), which its scripts, fonts and websocket send along.
Refused requests get 403 and a line saying why.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or a name) is this machine only: a loopback address, or ``localhost``.
    Other names are not looked up: what they resolve to may change."""
    name = host.strip().lower()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Access:
    """The rule for one server: with ``token`` every request must carry it; without, only loopback names."""

    token: str | None
    cookie: str = field(default_factory=lambda: f"foreman_token_{secrets.token_hex(4)}")
    """The cookie's name: one of the server's own (cookies do not tell ports apart: two servers on one host would
    overwrite each other's)."""

    def refusal(self, request: web.Request) -> str | None:
        """Why ``request`` is refused, or None."""
        websocket = request.headers.get(hdrs.UPGRADE, "").lower() == "websocket"
        if websocket and not _same_origin(request):
            return "a websocket from another site's page"
        if self.token is None:
            host = request.url.host or ""
            if not is_loopback(host):
                return f"this server answers to loopback names only, not {host or 'no host'}"
            return None
        given = request.query.get("token") or request.cookies.get(self.cookie) or ""
        if not secrets.compare_digest(given.encode(), self.token.encode()):
            return "this needs the token: open the whole URL `foreman serve` printed"
        return None

    def middleware(self) -> Middleware:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            reason = self.refusal(request)
            if reason is not None:
                raise web.HTTPForbidden(text=f"foreman serve: refused: {reason}\n")
            response = await handler(request)
            if self.token is not None and request.query.get("token") and not response.prepared:
                response.set_cookie(self.cookie, self.token, httponly=True, samesite="Strict", path="/")
            return response

        return guard


def _same_origin(request: web.Request) -> bool:
    """A browser's websocket names the page that opened it in ``Origin``; it must be this server's own page.
    Clients that are not browsers send none."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        return True
    return urlsplit(origin).netloc.lower() == (request.host or "").lower()
