"""`ggraph serve`: load the model once, start the engine's slots, run the app under uvicorn.

    ggraph serve -m MODEL [--host 127.0.0.1] [--port 8080] [-np N_PARALLEL] [-c N_CTX] [-t THREADS]
                 [--api-key KEY] [-a ALIAS]

-c is the context of all slots together (each slot holds c / np tokens), as llama-server's.
FastAPI and uvicorn are the `server` extra: without them the command says how to install them.
"""
from __future__ import annotations

import os
import sys
import threading

INSTALL_HINT = 'ggraph serve needs FastAPI and uvicorn: pip install "ggraph[server]"'


def add_arguments(p) -> None:
    """The flags of `ggraph serve` beside -m and the context flags (llama-server's names)."""
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port to listen on (default: 8080)")
    p.add_argument("-np", "--parallel", type=int, default=1,
                   help="number of slots: requests served at once, the rest queue (default: 1)")
    p.add_argument("--api-key", default=os.environ.get("LLAMA_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (default: $LLAMA_API_KEY, or none)")
    p.add_argument("-a", "--alias", default=None, help="model name in the API (default: the model file name)")


def missing_dependency() -> str | None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


def serve(args) -> int:
    hint = missing_dependency()
    if hint:
        print(f"error: {hint}", file=sys.stderr)
        return 1
    import uvicorn

    from ggraph.errors import GGraphError

    from ..model import load
    from .app import create_app
    from .engine import Engine
    if not 0 <= args.port <= 65535:
        raise GGraphError(f"--port must be in 0..65535, got {args.port}")
    from ..apps.pull import DEFAULT_MODEL
    model = load(args.model or DEFAULT_MODEL)
    engine = Engine(model, n_parallel=args.parallel, n_ctx=args.ctx_size, n_batch=args.batch_size,
                    n_ubatch=args.ubatch_size, n_threads=args.threads, swa_full=args.swa_full)
    name = args.alias or os.path.basename(model.path)
    app = create_app(engine, name, api_key=args.api_key)
    print(f"ggraph serve: {name} with {args.parallel} slot(s) of {engine.n_ctx_slot} tokens on "
          f"http://{args.host}:{args.port} (OpenAI API under /v1)", file=sys.stderr)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            # Ctrl-C: close the engine (off the signal handler) so open streams end with an
            # "unavailable" event now; uvicorn then finds no connection left to wait for
            threading.Thread(target=engine.close, name="ggraph-engine-close", daemon=True).start()
            super().handle_exit(sig, frame)

    try:
        Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="info",
                              timeout_graceful_shutdown=5)).run()
    finally:
        engine.close()
    return 0
