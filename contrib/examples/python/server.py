#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A Python worker for corral, standard library only (Python >= 3.7).

    corral --listen 127.0.0.1:8080 --count 4 -- /usr/bin/python3 contrib/examples/python/server.py

- The listening socket is fd 3 (LISTEN_FDS/LISTEN_PID, systemd style). Without LISTEN_FDS (run by
  hand) it binds 127.0.0.1:$PORT (default 8080) instead.
- Readiness: sd_notify("READY=1") to NOTIFY_SOCKET once the server is set up, in a few lines below.
- SIGTERM (corral's default stop signal): stop accepting, answer the requests in flight (with
  "Connection: close"), wait for every connection thread, exit 0. An idle keep-alive connection
  ends after IDLE_TIMEOUT, so a stop takes at most that long plus the slowest request.
"""

import http.server
import os
import signal
import socket
import socketserver
import sys
import threading

IDLE_TIMEOUT = 2.0  # seconds a keep-alive connection may sit between two requests
SLOT = os.environ.get("WORKER_INDEX", "-")
GENERATION = os.environ.get("WORKER_GENERATION", "-")
stopping = threading.Event()


def sd_notify(state):
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET ("@name" is abstract)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.sendto(state.encode(), address)
    return True


def listening_socket():
    """fd 3 when it was passed to this very process (LISTEN_PID), else a socket of our own."""
    if os.environ.get("LISTEN_PID") == str(os.getpid()) and int(os.environ.get("LISTEN_FDS", "0")) >= 1:
        return socket.socket(fileno=3)  # family and type are read from the fd (AF_INET, AF_INET6, AF_UNIX)
    s = socket.create_server(("127.0.0.1", int(os.environ.get("PORT", "8080"))))
    return s


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = IDLE_TIMEOUT         # also bounds how long a stop waits for an idle connection
    # Headers and body go out in two writes: without TCP_NODELAY, Nagle's algorithm holds the body
    # back until the client's delayed ACK, 40 ms per request on a keep-alive connection.
    disable_nagle_algorithm = True

    def do_GET(self):
        body = (f"slot={SLOT} pid={os.getpid()} generation={GENERATION} "
                f"runtime=python/{sys.version.split()[0]}\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Worker-Slot", SLOT)
        self.send_header("X-Worker-Pid", str(os.getpid()))
        self.send_header("X-Worker-Generation", GENERATION)
        if stopping.is_set():
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def address_string(self):
        # client_address is "" for a UNIX socket.
        return self.client_address[0] if self.client_address else "unix"

    def log_message(self, fmt, *args):
        pass  # one line per request is too much for a pool; log errors only

    def log_error(self, fmt, *args):
        sys.stderr.write(f"python worker {SLOT}: {fmt % args}\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    # Not daemon threads: server_close() then joins every connection thread, which is the drain.
    daemon_threads = False
    block_on_close = True


def main():
    sock = listening_socket()
    # The socket is shared with the other workers: one of them may take the connection this process was
    # woken up for. Non-blocking, accept() then fails with EAGAIN (ignored by socketserver) instead of
    # blocking serve_forever(), which would hold up shutdown() until the next connection.
    sock.setblocking(False)
    server = Server(sock.getsockname() if sock.family != socket.AF_UNIX else ("unix", 0), Handler,
                    bind_and_activate=False)
    server.socket.close()
    server.socket = sock
    server.server_address = sock.getsockname()

    def on_stop(signum, frame):
        if not stopping.is_set():
            stopping.set()
            # shutdown() waits for serve_forever() to return, which runs in this (the main) thread.
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)

    sd_notify("READY=1")
    server.serve_forever(poll_interval=0.2)
    server.server_close()  # closes our copy of the listening socket, joins the connection threads
    return 0


if __name__ == "__main__":
    sys.exit(main())
