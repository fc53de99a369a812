# SPDX-License-Identifier: MIT
"""A tiny ASGI application for the uvicorn example: answers with the slot, pid and generation. Loading it
takes $EXAMPLE_LOAD_SECONDS (default 0), standing in for the imports and connections of a real app, so the
test can tell readiness after the load from readiness at exec."""

import os
import sys
import time

SLOT = os.environ.get("WORKER_INDEX", "-")
GENERATION = os.environ.get("WORKER_GENERATION", "-")
RUNTIME = f"uvicorn/python{sys.version.split()[0]}"

time.sleep(float(os.environ.get("EXAMPLE_LOAD_SECONDS", "0")))


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"slot={SLOT} pid={os.getpid()} generation={GENERATION} runtime={RUNTIME}\n".encode()
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode()),
        (b"x-worker-slot", SLOT.encode()), (b"x-worker-pid", str(os.getpid()).encode()),
        (b"x-worker-generation", GENERATION.encode())]})
    await send({"type": "http.response.body", "body": body})
