"""The HTTP layer: a FastAPI app over an Engine (OpenAI's endpoints and llama-server's own).

    GET  /health                 {"status": "ok", slots idle/processing, requests queued} (also /v1/health)
    GET  /v1/models              the one model, named by --alias (default: the file name) (also /models)
    POST /v1/completions         OpenAI text completions (stream: server-sent events, then [DONE])
    POST /v1/chat/completions    OpenAI chat completions (the GGUF's chat template) (also /chat/completions)
    POST /v1/embeddings          OpenAI embeddings, llama-server's semantics (server/embeddings.py) (also /embeddings)
    POST /completion             llama-server's completion fields (stream: events, no [DONE], as there)
    POST /tokenize, /detokenize  llama-server's

Streams use starlette's StreamingResponse with `data: <json>\\n\\n` events (docs/server.md says why).
A request waits for its first event before the response starts, so a request the engine refuses
(a prompt longer than the slot's context, a bad value) is a 400 even when it asked for a stream.
A client that goes away cancels its job: the slot is free before its next step.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import time

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ggraph.errors import GGraphError

from . import jobs
from .engine import END, ShuttingDown
from .errors import RequestError, server_error
from .schemas import (ChatCompletionRequest, CompletionRequest, DetokenizeRequest, LlamaCompletionRequest,
                      TokenizeRequest, request_error)

POLL_S = 0.5           # how often a request waiting for the engine checks that its client is still there


def _json(obj) -> str:
    # allow_nan: a logprob of a token the model rules out entirely is -inf
    return json.dumps(obj, ensure_ascii=False, allow_nan=True)


class _JSON(JSONResponse):
    def render(self, content) -> bytes:
        return _json(content).encode("utf-8")


def _unavailable(e: ShuttingDown) -> RequestError:
    return RequestError(str(e), status=503, type="unavailable_error")


def _error(e: RequestError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if e.status == 401 else None
    return _JSON(e.body(), status_code=e.status, headers=headers)


class _ClientGone(Exception):
    pass


async def _next_event(job, request: Request):
    """The job's next event, watching for the client going away while it waits."""
    while True:
        try:
            return await job.get(timeout=POLL_S)
        except asyncio.TimeoutError:
            if await request.is_disconnected():
                job.cancel()
                raise _ClientGone() from None


async def _parse(request: Request, schema):
    """The JSON body (whatever the Content-Type says, as llama-server reads it) as a checked schema."""
    raw = await request.body()
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError as e:
        raise RequestError(f"the request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise RequestError("the request body must be a JSON object" if data is None else
                           f"the request body must be a JSON object, got {type(data).__name__}")
    try:
        body = schema.model_validate(data)
    except ValidationError as e:
        raise request_error(e.errors()) from None
    body.check()
    return body


def create_app(engine, model_name: str, api_key: str | None = None) -> FastAPI:
    model = engine.model
    created = int(time.time())
    app = FastAPI(title="ggraph server", version="0.1.0",
                  description="OpenAI-compatible API and llama-server's endpoints on ggraph")
    app.state.engine = engine

    @app.exception_handler(RequestError)
    async def _on_request_error(request, exc):
        return _error(exc)

    @app.exception_handler(Exception)
    async def _on_bug(request, exc):          # logged by starlette; the client gets an OpenAI-style 500
        return _JSON(server_error(f"internal error: {type(exc).__name__}: {exc}"), status_code=500)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http(request, exc):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return _error(RequestError(str(exc.detail), status=exc.status_code, type=kind))

    def authorized(request: Request) -> None:
        if api_key is None:
            return
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else request.headers.get("x-api-key", "")
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise RequestError("invalid API key: send the server's --api-key as 'Authorization: Bearer KEY'",
                               status=401, type="authentication_error", code="invalid_api_key")

    auth = [Depends(authorized)]

    async def run(request: Request, task, stream: bool, done_marker: bool) -> Response:
        try:
            job = engine.submit(task, loop=asyncio.get_running_loop())
        except ShuttingDown as e:
            return _error(_unavailable(e))
        try:
            first = await _next_event(job, request)
        except _ClientGone:
            return Response(status_code=499)
        except RequestError as e:
            return _error(e)
        except ShuttingDown as e:
            return _error(_unavailable(e))
        except GGraphError as e:            # the engine refused the request
            return _error(RequestError(str(e)))
        except BaseException:
            job.cancel()
            raise
        if first is END:                    # cancelled before it produced anything
            return _JSON(server_error("the request was cancelled"), status_code=503)
        if not stream:
            job.cancel()                    # a no-op: the task has ended with its one event
            return _JSON(first)
        return StreamingResponse(_events(job, first, done_marker), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def _events(job, first, done_marker: bool):
        try:
            yield f"data: {_json(first)}\n\n"
            while True:
                ev = await job.get()
                if ev is END:
                    break
                yield f"data: {_json(ev)}\n\n"
            if done_marker:
                yield "data: [DONE]\n\n"
        except RequestError as e:            # failed mid-stream: the error as the last event
            yield f"data: {_json(e.body())}\n\n"
        except ShuttingDown as e:            # Ctrl-C: the stream ends now, not at uvicorn's timeout
            yield f"data: {_json(_unavailable(e).body())}\n\n"
        except Exception as e:
            yield f"data: {_json(server_error(str(e) or type(e).__name__))}\n\n"
        finally:
            job.cancel()                     # client gone (or done): free the slot

    @app.get("/health")
    @app.get("/v1/health", include_in_schema=False)
    async def health():
        return {"status": "ok", **engine.stats()}

    @app.get("/v1/models", dependencies=auth)
    @app.get("/models", dependencies=auth, include_in_schema=False)
    async def models():
        info = model.info()
        return {"object": "list", "data": [{
            "id": model_name, "object": "model", "created": created, "owned_by": "ggraph",
            "meta": {"architecture": info["architecture"], "n_vocab": info["n_vocab"],
                     "n_ctx_train": info["n_ctx_train"], "n_ctx_slot": engine.n_ctx_slot,
                     "n_parallel": len(engine.slots), "n_embd": info["n_embd"], "n_params": info["n_params"],
                     "size": info["file_size"]}}]}

    @app.post("/v1/completions", dependencies=auth)
    async def completions(request: Request):
        body = await _parse(request, CompletionRequest)
        return await run(request, jobs.openai_completion(body, model_name), bool(body.stream), True)

    @app.post("/v1/chat/completions", dependencies=auth)
    @app.post("/chat/completions", dependencies=auth, include_in_schema=False)
    async def chat_completions(request: Request):
        body = await _parse(request, ChatCompletionRequest)
        return await run(request, jobs.openai_chat(body, model_name), bool(body.stream), True)

    @app.post("/v1/embeddings", dependencies=auth)
    @app.post("/embeddings", dependencies=auth, include_in_schema=False)
    async def embeddings(request: Request):
        from .embeddings import EmbeddingRequest, openai_embeddings
        body = await _parse(request, EmbeddingRequest)
        return await run(request, openai_embeddings(body, model_name), False, False)

    @app.post("/completion", dependencies=auth)
    async def completion(request: Request):
        body = await _parse(request, LlamaCompletionRequest)
        return await run(request, jobs.llama_completion(body, model_name), bool(body.stream), False)

    @app.post("/tokenize", dependencies=auth)
    async def tokenize(request: Request):
        body = await _parse(request, TokenizeRequest)
        ids = await run_in_threadpool(model.tokenize, body.content, body.add_special, body.parse_special)
        if not body.with_pieces:
            return {"tokens": ids}
        out = []
        for t in ids:
            piece = model.token_to_piece(t, special=True)
            try:
                out.append({"id": t, "piece": piece.decode("utf-8")})
            except UnicodeDecodeError:          # part of a character: its bytes, as llama-server
                out.append({"id": t, "piece": list(piece)})
        return {"tokens": out}

    @app.post("/detokenize", dependencies=auth)
    async def detokenize(request: Request):
        body = await _parse(request, DetokenizeRequest)
        n = model.n_vocab
        for i, t in enumerate(body.tokens):
            if not 0 <= t < n:
                raise RequestError(f"tokens[{i}]: token id {t} is outside the vocabulary (0..{n - 1})", "tokens")
        text = b"".join(model.token_to_piece(t, special=True) for t in body.tokens)
        return {"content": text.decode("utf-8", errors="replace")}

    return app
