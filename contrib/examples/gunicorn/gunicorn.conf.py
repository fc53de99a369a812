# SPDX-License-Identifier: MIT
"""gunicorn settings for running under corral (tested with Debian 12's gunicorn 20.1.0):

    corral --listen 127.0.0.1:8080 --count 4 -- /usr/bin/python3 -m gunicorn \
        --config contrib/examples/gunicorn/gunicorn.conf.py --chdir contrib/examples/gunicorn app:app

Sockets: nothing to configure. gunicorn takes LISTEN_FDS itself when LISTEN_PID is its own pid, which
holds as long as corral execs gunicorn directly (no shell in between: `sh -c "gunicorn ..."` would get
a different pid, and gunicorn would ignore the fds and bind 127.0.0.1:8000 instead).

Readiness: the gunicorn master sends READY=1 itself, but as soon as it has its listening sockets, before
it has forked a worker that can answer, and without a worker that boots at all (an application that
fails to import makes the master exit 3 only later). So this file hides NOTIFY_SOCKET from gunicorn and
sends READY=1 from the post_worker_init hook, in the worker process, once the application is loaded and
just before the worker starts accepting. The worker is a child of the gunicorn master, which is corral's
worker: corral counts datagrams from any process below a worker for that worker.
"""

import os
import socket

workers = 1            # corral runs the pool; one gunicorn worker per corral slot
worker_class = "sync"
graceful_timeout = 10  # on SIGTERM: let requests in flight finish for up to this long (below corral's StopTimeoutSec=)
timeout = 30

# Take NOTIFY_SOCKET away from gunicorn's own sd_notify (and from the application). Kept in another
# variable so that loading this file again (gunicorn re-reads it on SIGHUP) still finds it.
_notify_socket = os.environ.pop("NOTIFY_SOCKET", None) or os.environ.get("CORRAL_GUNICORN_NOTIFY_SOCKET")
if _notify_socket:
    os.environ["CORRAL_GUNICORN_NOTIFY_SOCKET"] = _notify_socket


def sd_notify(state):
    if not _notify_socket:
        return
    address = "\0" + _notify_socket[1:] if _notify_socket.startswith("@") else _notify_socket
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.sendto(state.encode(), address)


def post_worker_init(worker):
    # The application is loaded and the worker's signal handlers are set: it accepts right after this.
    # A worker gunicorn replaces later (crash, max_requests) sends it again, which corral ignores.
    sd_notify("READY=1")
