"""The UI's guard: token sign-in, the session cookie, CSRF, and the security headers.

Design. One secret, the token (``PLAIT_TOKEN`` or generated at start), protects every
route, static files included. It is accepted in three forms:

* ``?token=T`` on any URL, once: the answer is a redirect to the same URL without the
  token (so it leaves the address bar, the history and any ``Referer``) that sets the
  session cookie, ``HttpOnly; SameSite=Strict; Path=/`` (``Secure`` over HTTPS);
* the session cookie, whose value is an HMAC of the token (never the token itself);
* ``Authorization: Bearer T``, for scripts.

Every request whose method is not ``GET``/``HEAD`` must also carry the CSRF token, an HMAC
of the token under another label, in the form field ``csrf`` or the ``X-CSRF-Token``
header; the guard reads the (bounded) body, checks it and replays it to the app. Both
derived values are stateless, so a restart with the same ``PLAIT_TOKEN`` keeps sessions.
The cookie's name carries the server port: two ``plait ui`` on one host do not overwrite
each other's sessions. Every answer, refusals included, gets the security headers.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse, Response

__all__ = ["CSP", "SECURITY_HEADERS", "Guard", "Keys", "new_token"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}
MAX_FORM_BYTES = 64 * 1024
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_SIGN_IN = (
    "plait ui: a token is needed. Open the URL that `plait ui` printed (it ends with "
    "?token=...), or send the header `Authorization: Bearer <token>`.\n"
)


def new_token() -> str:
    """A fresh random token (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class Keys:
    """The token and the values derived from it."""

    token: str

    def _derive(self, label: str) -> str:
        return hmac.new(self.token.encode(), label.encode(), hashlib.sha256).hexdigest()

    @property
    def session(self) -> str:
        """The session cookie's value."""
        return self._derive("plait-ui session")

    @property
    def csrf(self) -> str:
        """The CSRF token forms carry."""
        return self._derive("plait-ui csrf")

    def is_token(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the token (in constant time)."""
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), self.token.encode()
        )

    def is_session(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the session cookie's value."""
        return candidate is not None and hmac.compare_digest(
            candidate.encode(), self.session.encode()
        )

    def is_csrf(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the CSRF token."""
        return candidate is not None and hmac.compare_digest(candidate.encode(), self.csrf.encode())


def cookie_name(scope: Scope) -> str:
    """The session cookie's name for this server (cookies ignore ports; names do not)."""
    server = scope.get("server")
    return f"plait_ui_{server[1]}" if server and server[1] else "plait_ui"


def _with_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            for name, value in SECURITY_HEADERS.items():
                headers[name] = value
            if "cache-control" not in headers:
                headers["cache-control"] = "no-store"
        await send(message)

    return sending


class Guard:
    """ASGI middleware: sign-in by token, session cookie or bearer; CSRF on writes;
    security headers on every answer."""

    def __init__(self, app: ASGIApp, keys: Keys) -> None:
        self.app = app
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send)
        connection = HTTPConnection(scope)
        supplied = connection.query_params.get("token")
        if supplied is not None:
            response = self._sign_in(scope, connection, supplied)
            await response(scope, receive, send)
            return
        if not self._signed_in(scope, connection):
            await PlainTextResponse(_SIGN_IN, status_code=401)(scope, receive, send)
            return
        if scope["method"] not in _SAFE_METHODS:
            checked = await self._checked_body(connection, receive)
            if isinstance(checked, Response):
                await checked(scope, receive, send)
                return
            receive = _replay(checked)
        await self.app(scope, receive, send)

    def _sign_in(self, scope: Scope, connection: HTTPConnection, supplied: str) -> Response:
        if not self.keys.is_token(supplied):
            return PlainTextResponse("plait ui: wrong token.\n", status_code=401)
        rest = [(k, v) for k, v in connection.query_params.multi_items() if k != "token"]
        path = "/" + scope.get("path", "/").lstrip("/")  # never "//host": stay on this site
        location = scope.get("root_path", "") + path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(location, status_code=303)
        response.set_cookie(
            cookie_name(scope),
            self.keys.session,
            httponly=True,
            samesite="strict",
            secure=scope.get("scheme") == "https",
            path="/",
        )
        return response

    def _signed_in(self, scope: Scope, connection: HTTPConnection) -> bool:
        if self.keys.is_session(connection.cookies.get(cookie_name(scope))):
            return True
        scheme, _, credential = connection.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and self.keys.is_token(credential.strip())

    async def _checked_body(self, connection: HTTPConnection, receive: Receive) -> bytes | Response:
        """The request body when it carries the CSRF token, else the refusal."""
        body = bytearray()
        while True:
            message = await receive()
            body.extend(message.get("body", b""))
            if len(body) > MAX_FORM_BYTES:
                return PlainTextResponse("plait ui: request too large.\n", status_code=413)
            if not message.get("more_body", False):
                break
        supplied = connection.headers.get("x-csrf-token")
        if supplied is None:
            fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            supplied = next((value for key, value in fields if key == "csrf"), None)
        if not self.keys.is_csrf(supplied):
            return PlainTextResponse(
                "plait ui: the CSRF token is missing or wrong; reload the page and try again.\n",
                status_code=403,
            )
        return bytes(body)


def _replay(body: bytes) -> Receive:
    """A ``receive`` that hands the app the body the guard already read."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
