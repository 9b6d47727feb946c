"""The gateway's HTTP server: FastAPI routes, access checks, and model work in a thread pool.

A request routed to the cloud (only under a standing consent, ``engine.consent``) is answered by the
provider's model through the escalation send path; under "ask me" it waits for the user's review and
fails with 408 (``cloud_consent_timeout``) or 403 (``cloud_consent_denied``) when none comes.

Each request's model work runs in a worker thread, behind one first-come-first-served lock per model,
so a long answer never blocks the event loop and clients are served in arrival order. A streaming
client that disconnects sets its request's cancel event, and the backend stops between two tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from collections import deque
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse
from starlette.exceptions import HTTPException

from app.gateway import access, wire
from app.gateway.config import load_gateway_config
from engine import backends, completions
from engine.agent import Agent
from engine.catalog import Catalog, load_catalog
from engine.completions import ChatRequest, Route
from engine.consent import load_consent_config
from engine.errors import (
    ConsentDenied,
    ConsentTimedOut,
    ContextLengthError,
    UnderstudyError,
    UnknownModelError,
)
from engine.router import Router
from engine.settings import load_settings
from engine.store import Store

WORKER_THREADS = 16
ROUTE_HEADER = "x-understudy-route"


class FairLock:
    """A lock handed to waiters in the order they asked (``threading.Lock`` promises no order)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._waiting: deque[threading.Event] = deque()
        self._held = False

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._guard:
            turn = None
            if self._held:
                turn = threading.Event()
                self._waiting.append(turn)
            self._held = True
        if turn is not None:
            turn.wait()
        try:
            yield
        finally:
            with self._guard:
                if self._waiting:
                    self._waiting.popleft().set()  # handed over: it stays held
                else:
                    self._held = False


class ApiError(Exception):
    def __init__(self, status: int, message: str, kind: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code


def _api_error(error: Exception) -> ApiError:
    """An engine or wire error as the HTTP status and OpenAI error type a client expects."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, UnknownModelError):
        return ApiError(404, str(error), "invalid_request_error", "model_not_found")
    if isinstance(error, ContextLengthError):
        return ApiError(400, str(error), "invalid_request_error", "context_length_exceeded")
    if isinstance(error, ConsentTimedOut):
        return ApiError(408, str(error), "server_error", "cloud_consent_timeout")
    if isinstance(error, ConsentDenied):
        return ApiError(403, str(error), "permission_error", "cloud_consent_denied")
    if isinstance(error, wire.BadRequest):
        return ApiError(400, str(error), "invalid_request_error", error.code)
    if isinstance(error, UnderstudyError):
        return ApiError(500, str(error), "server_error")
    return ApiError(500, f"the gateway failed: {error!r}", "server_error")


def _error_response(error: ApiError) -> JSONResponse:
    headers = {"Retry-After": "2"} if error.status == 503 else None
    return JSONResponse(wire.error_body(error.message, error.kind, error.code), error.status, headers=headers)


class Gateway:
    """What the routes share: the catalog, the router, a store per worker thread, the model locks."""

    def __init__(self, token: str, hosts: frozenset[str]):
        self.token = token
        self.hosts = hosts
        self.settings = load_settings()
        self.catalog: Catalog = load_catalog()
        self.executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="gateway")
        self.ready = threading.Event()
        self.load_error: str | None = None
        self._threads = threading.local()
        self._router: Router | None = None
        self._routing = threading.Lock()
        self._locks: dict[str, FairLock] = {}

    def store(self) -> Store:
        """This thread's connection (SQLite connections stay in their thread)."""
        store = getattr(self._threads, "store", None)
        if store is None:
            store = self._threads.store = Store.open()
        return store

    def load_generalist(self) -> None:
        """Load the generalist (and read its specialists ahead); requests get 503 until then."""
        try:
            agent = Agent(self.store(), self.catalog, load_options=self.settings.load_options())
            agent.load_model()
        except UnderstudyError as error:
            self.load_error = str(error)
        finally:
            self.ready.set()

    def route(self, request: ChatRequest) -> Route:
        with self._routing:
            if self._router is None:
                self._router = Router(self.store())
            return completions.route_request(self.store(), self.catalog, self._router, request)

    def model_lock(self, model_id: str) -> FairLock:
        with self._routing:
            return self._locks.setdefault(model_id, FairLock())

    def answer(self, request: ChatRequest, route: Route, cancel: threading.Event, on_piece) -> Any:
        """Run one request in this worker thread, in its model's queue (the cloud has no queue here)."""
        if route.consent is not None:
            timeout_s = load_consent_config().ask_timeout_s
            stream = completions.complete_in_cloud(self.store(), route, request, cancel, timeout_s)
            return backends.drain(stream, on_piece)
        with self.model_lock(route.entry_id).held():
            stream = completions.complete(
                self.store(), self.catalog, route, request, self.settings.load_options(), cancel
            )
            return backends.drain(stream, on_piece)


def create_app(
    host: str, port: int, token: str | None = None, announced: threading.Event | None = None
) -> FastAPI:
    """The gateway's ASGI app for a server bound to ``host``:``port`` (for the Host check).

    The generalist starts loading at start-up, or once ``announced`` is set: llama.cpp points the
    process's stdout at /dev/null while a model loads, which would swallow the listening line.
    """
    gateway = Gateway(token or access.gateway_token(), access.allowed_hosts(host, port))

    def load_generalist() -> None:
        if announced is not None:
            announced.wait()
        gateway.load_generalist()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        asyncio.get_running_loop().run_in_executor(gateway.executor, load_generalist)
        yield
        gateway.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.gateway = gateway

    @app.middleware("http")
    async def check_access(request: Request, call_next) -> Response:
        if request.headers.get("host", "") not in gateway.hosts:
            message = "this Host is not the gateway's address; requests through other names are refused"
            return _error_response(ApiError(403, message, "invalid_request_error", "host_not_allowed"))
        if not access.token_matches(request.headers.get("authorization"), gateway.token):
            message = "a valid token is needed: Authorization: Bearer <token> (`understudy serve token`)"
            return _error_response(ApiError(401, message, "invalid_request_error", "invalid_api_key"))
        return await call_next(request)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        kind = "invalid_request_error" if error.status_code < 500 else "server_error"
        return _error_response(ApiError(error.status_code, str(error.detail), kind))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        return _error_response(ApiError(400, str(error), "invalid_request_error"))

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        names = await loop.run_in_executor(
            gateway.executor, lambda: completions.served_models(gateway.store(), gateway.catalog)
        )
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "understudy"} for name in names
            ],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        loop = asyncio.get_running_loop()
        try:
            body = await request.json()
        except ValueError:
            return _error_response(ApiError(400, "the body is not JSON", "invalid_request_error"))
        user_agent = request.headers.get("user-agent", "")
        try:
            model = (
                load_gateway_config().resolve(str(body.get("model", ""))) if isinstance(body, dict) else ""
            )
            chat = wire.chat_request(
                body, gateway.settings.generation_options(), model, user_agent.split("/")[0], user_agent
            )
            if not gateway.ready.is_set():
                raise ApiError(503, "the model is still loading; try again in a moment", "server_error")
            if gateway.load_error:
                raise ApiError(500, gateway.load_error, "server_error", "model_load_failed")
            route = await loop.run_in_executor(gateway.executor, gateway.route, chat)
        except Exception as error:
            return _error_response(_api_error(error))
        headers = {ROUTE_HEADER: route.header}
        cancel = threading.Event()
        events: asyncio.Queue = asyncio.Queue()

        def work() -> None:
            try:
                result = gateway.answer(
                    chat, route, cancel, lambda piece: loop.call_soon_threadsafe(events.put_nowait, piece)
                )
                loop.call_soon_threadsafe(events.put_nowait, result)
            except Exception as error:
                loop.call_soon_threadsafe(events.put_nowait, error)

        loop.run_in_executor(gateway.executor, work)
        if not body.get("stream"):
            while not isinstance(result := await events.get(), completions.ChatResult | Exception):
                pass
            if isinstance(result, Exception):
                return _error_response(_api_error(result))
            return JSONResponse(wire.completion_body(result), headers=headers)
        first = await events.get()
        if isinstance(first, Exception):  # refused before the first token: still a plain HTTP error
            return _error_response(_api_error(first))
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return EventSourceResponse(
            _stream(first, events, cancel, route, include_usage), headers=headers, ping=15
        )

    return app


async def _stream(
    first: Any, events: asyncio.Queue, cancel: threading.Event, route: Route, include_usage: bool
) -> AsyncIterator[dict[str, str]]:
    """SSE chunks in OpenAI's shape; tool calls come whole in one chunk once filled (abetlen's server
    refuses to stream them at all)."""
    identifier = wire.completion_id()
    try:
        yield {"data": wire.chunk(identifier, route.model, {"role": "assistant", "content": ""})}
        item = first
        while isinstance(item, str):
            yield {"data": wire.chunk(identifier, route.model, {"content": item})}
            item = await events.get()
        if isinstance(item, Exception):
            error = _api_error(item)
            yield {"data": wire.json.dumps(wire.error_body(error.message, error.kind, error.code))}
            return
        if item.function_calls:
            delta = {"tool_calls": wire.tool_calls(item.function_calls, streaming=True)}
            yield {"data": wire.chunk(identifier, item.model, delta)}
        yield {"data": wire.chunk(identifier, item.model, {}, wire.finish_reason(item))}
        if include_usage:
            yield {"data": wire.usage_chunk(identifier, item)}
        yield {"data": "[DONE]"}
    finally:
        cancel.set()  # a client gone mid-stream stops its generation; after the end it is a no-op


def serve(host: str, port: int, on_listening=None) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn's handlers end it cleanly); ``on_listening`` is called
    once the socket accepts connections."""
    import uvicorn

    listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise UnderstudyError(
            f"cannot serve on {host}:{port}: {error.strerror} (address already in use means another "
            "program has that port); choose another port"
        ) from None
    announced = threading.Event()
    app = create_app(host, port, announced=announced)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on"))

    async def run() -> None:
        task = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            while not server.started and not task.done():
                await asyncio.sleep(0.05)
            if server.started and on_listening is not None:
                on_listening()
        finally:  # also when start-up fails (a port in use): the loading thread must not wait forever
            announced.set()
        await task

    asyncio.run(run())
