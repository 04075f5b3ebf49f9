"""``Webhook``: runs on authenticated HTTP requests (Starlette served by uvicorn).

Design. The app lives on the server's loop. Every request is authenticated first:
``Authorization: Bearer <token>`` (``token=``, else ``PLAIT_TOKEN``, else one generated
and announced at start) or ``X-Plait-Signature: sha256=<hex HMAC-SHA256 of the body>``
with a shared ``secret`` (``secret=`` or ``PLAIT_WEBHOOK_SECRET``); both compared in
constant time; anything else is 401. A body larger than ``max_body`` is refused (413)
while it is read. ``POST <path>`` takes a JSON object of params (or any JSON when a
``params`` callable turns it into params), validates them against the pipeline before
anything runs (422 with the problems), and answers 202 ``{"run_id", "status"}``; 409
when the overlap policy skips it, 503 while stopping. ``GET /runs/{id}`` and
``GET /health`` answer JSON. The listening socket is bound before the server says it is
ready; binding to an address other than loopback without an explicit token or secret
is refused.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import uuid
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from plait._net import is_loopback, listen
from plait.errors import UsageError
from plait.events._triggers import Event, Params, make_params

if TYPE_CHECKING:
    from collections.abc import Iterator

    from starlette.applications import Starlette
    from starlette.requests import Request

    from plait.events._serve import Server

__all__ = ["Webhook", "signature"]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Plait-Signature`` header value for ``body``.

    >>> signature("s", b"{}")[:7]
    'sha256='
    """
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _TooLarge(Exception):
    pass


class Webhook:
    """A run per authenticated ``POST`` to ``path``.

    Args:
        path: Where runs are requested (``POST``).
        host: Address to listen on (default loopback; another needs a token or secret).
        port: Port (0: any free port; read ``address`` once ``server.ready`` is set).
        token: The bearer token (default ``PLAIT_TOKEN``, else generated and announced).
        secret: Shared secret for ``X-Plait-Signature`` (default ``PLAIT_WEBHOOK_SECRET``).
        params: Default: the JSON body is the params; or a callable ``body -> params``.
        name: The trigger's name in run records (default ``webhook <path>``).
        max_body: Largest accepted body in bytes.
    """

    kind = "webhook"

    def __init__(
        self,
        path: str = "/run",
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        token: str | None = None,
        secret: str | None = None,
        params: Params = None,
        name: str | None = None,
        max_body: int = 1_000_000,
    ) -> None:
        if not path.startswith("/") or path.startswith("/runs/") or path == "/health":
            raise UsageError(
                f"Webhook path must start with '/' and not be /health or under /runs/, got {path!r}"
            )
        self.path = path
        self.host = host
        self.port = port
        self.token = token or os.environ.get("PLAIT_TOKEN") or None
        self.secret = secret or os.environ.get("PLAIT_WEBHOOK_SECRET") or None
        self.params = params
        self.name = name or f"webhook {path}"
        self.max_body = max_body
        self.address: tuple[str, int] | None = None
        self.listening = True  # tells the server to wait for trigger_ready
        if not is_loopback(host) and not (self.token or self.secret):
            raise UsageError(
                f"refusing to serve a webhook on {host!r}, which other machines can reach, "
                "with a generated token: set PLAIT_TOKEN (or a secret for signatures) to a "
                "long random value you choose, or listen on 127.0.0.1"
            )

    def __repr__(self) -> str:
        return f"Webhook({self.path!r}, host={self.host!r}, port={self.port})"

    @property
    def url(self) -> str:
        """The URL runs are requested at (once listening)."""
        host, port = self.address or (self.host, self.port)
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{self.path}"

    def authorized(self, headers: Any, body: bytes) -> bool:
        """Whether a request carries the token or a valid signature."""
        given = headers.get("authorization", "")
        if (
            self.token
            and given.startswith("Bearer ")
            and hmac.compare_digest(given[7:].strip().encode(), self.token.encode())
        ):
            return True
        signed = headers.get("x-plait-signature", "")
        if self.secret and signed:
            return hmac.compare_digest(signed.encode(), signature(self.secret, body).encode())
        return False

    async def run(self, server: Server) -> None:
        """Serve HTTP until cancelled."""
        import uvicorn

        if not (self.token or self.secret):
            self.token = secrets.token_urlsafe(32)
            server.announce(f"webhook {self.path}: generated token {self.token}")
        sock = listen(self.host, self.port, backlog=512, subject="Webhook")
        sock.setblocking(False)
        self.address = sock.getsockname()[:2]
        config = uvicorn.Config(
            self.app(server),
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
        )
        web = _uvicorn_server(config)
        serving = asyncio.ensure_future(web.serve(sockets=[sock]))
        server.announce(f"webhook: POST {self.url} (GET /runs/ID, /health)")
        try:
            while not web.started and not serving.done():
                await asyncio.sleep(0.01)
            if serving.done():
                serving.result()
            server.trigger_ready(self)
            await asyncio.shield(serving)
        except asyncio.CancelledError:
            web.should_exit = True
            await serving
            raise
        finally:
            sock.close()

    def app(self, server: Server) -> Starlette:
        """The Starlette app of this webhook on ``server``."""
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        def refuse(status: int, error: str, **extra: Any) -> JSONResponse:
            return JSONResponse({"error": error, **extra}, status_code=status)

        async def body_of(request: Request) -> bytes:
            declared = request.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_body:
                raise _TooLarge
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > self.max_body:
                    raise _TooLarge
                chunks.append(chunk)
            return b"".join(chunks)

        async def guarded(request: Request) -> tuple[bytes | None, JSONResponse | None]:
            try:
                body = await body_of(request)
            except _TooLarge:
                return None, refuse(413, f"body larger than {self.max_body} bytes")
            if not self.authorized(request.headers, body):
                return None, refuse(
                    401,
                    "unauthorized: send 'Authorization: Bearer <token>' or "
                    "'X-Plait-Signature: sha256=<HMAC-SHA256 of the body>'",
                )
            return body, None

        async def run_endpoint(request: Request) -> JSONResponse:
            body, refused = await guarded(request)
            if refused is not None or body is None:
                return refused or refuse(400, "no body")
            try:
                payload = json.loads(body) if body.strip() else {}
            except (ValueError, UnicodeDecodeError) as exc:
                return refuse(400, f"the body is not JSON: {exc}")
            if self.params is None and not isinstance(payload, dict):
                kind = type(payload).__name__
                return refuse(400, f"the body must be a JSON object of params, got {kind}")
            try:
                params = make_params(self.params, payload, payload)
                problems = params_of(server, params)
            except Exception as exc:
                return refuse(422, f"invalid params: {exc}")
            if problems:
                return refuse(422, "invalid params", problems=problems)
            if server._stopping:
                return refuse(503, "the server is stopping")
            headers = request.headers
            given = headers.get("x-plait-event-id") or headers.get("x-request-id")
            event_id = (given or uuid.uuid4().hex)[:200]
            submitted = server.submit(Event(self.kind, self.name, event_id, params, payload))
            if not submitted.accepted:
                return refuse(409, f"not run: {submitted.error}", run_id=submitted.run_id)
            answer = {"run_id": submitted.run_id, "status": submitted.status}
            return JSONResponse(answer, status_code=202)

        async def run_status(request: Request) -> JSONResponse:
            _, refused = await guarded(request)
            if refused is not None:
                return refused
            found = server.status(request.path_params["run_id"])
            if found is None:
                return refuse(404, f"no run {request.path_params['run_id']!r}")
            return JSONResponse(found)

        async def health(request: Request) -> JSONResponse:
            _, refused = await guarded(request)
            if refused is not None:
                return refused
            return JSONResponse(
                {
                    "status": "stopping" if server._stopping else "ok",
                    "running": len(server._running),
                    "counts": dict(server.counts),
                }
            )

        return Starlette(
            routes=[
                Route(self.path, run_endpoint, methods=["POST"]),
                Route("/runs/{run_id}", run_status, methods=["GET"]),
                Route("/health", health, methods=["GET"]),
            ]
        )


def params_of(server: Server, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The pipeline's problems with ``params``."""
    from plait.events._serve import params_problems

    return params_problems(server.pipeline, {**server.params, **params}, server.config)


def _uvicorn_server(config: Any) -> Any:
    """A uvicorn server without its own signal handlers: the plait server owns them."""
    import uvicorn

    class Quiet(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return Quiet(config)
