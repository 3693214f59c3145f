"""`ggraph serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn, the `server` extra) with
llama-server's slots. How to run it and call it: docs/server.md.

    engine.py   the slot scheduler: N slots (a Llama each) over one Model, one worker thread,
                a FIFO queue, round-robin steps (no HTTP in it)
    jobs.py     what a request runs on a slot: completion / chat / llama-server tasks and shapes
    schemas.py  request bodies (pydantic, strict) and their validation errors
    errors.py   OpenAI-style error bodies; engine errors -> the request field at fault
    app.py      the FastAPI app: routes, --api-key, server-sent events, disconnects
    serve.py    the command: flags, model loading, uvicorn

Only app.py and serve.py's serve() import FastAPI / uvicorn.
"""
