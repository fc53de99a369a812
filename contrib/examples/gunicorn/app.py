# SPDX-License-Identifier: MIT
"""A tiny WSGI application for the gunicorn example: answers with the slot, the pid of the gunicorn
worker process that served the request (its parent, the gunicorn master, is corral's worker) and the
generation."""

import os
import sys

SLOT = os.environ.get("WORKER_INDEX", "-")
GENERATION = os.environ.get("WORKER_GENERATION", "-")


def app(environ, start_response):
    pid = os.getpid()
    body = (f"slot={SLOT} pid={pid} master={os.getppid()} generation={GENERATION} "
            f"runtime=gunicorn/python{sys.version.split()[0]}\n").encode()
    start_response("200 OK", [
        ("Content-Type", "text/plain"),
        ("Content-Length", str(len(body))),
        ("X-Worker-Slot", SLOT),
        ("X-Worker-Pid", str(pid)),
        ("X-Worker-Generation", GENERATION),
    ])
    return [body]
