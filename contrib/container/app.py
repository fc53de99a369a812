# SPDX-License-Identifier: MIT
# A stand-in app for the container example: serves HTTP on the socket corral passes (fd 3, LISTEN_FDS).
import http.server
import os
import socket


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"hello from pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.HTTPServer):
    def server_bind(self):
        pass  # corral bound it


server = Server(("", 0), Handler, bind_and_activate=False)
server.socket = socket.socket(fileno=3)
server.serve_forever()
