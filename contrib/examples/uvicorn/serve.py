# SPDX-License-Identifier: MIT
"""uvicorn that says READY=1 once it serves: the uvicorn command line as it is (`serve.py --fd 3 app:app`),
with a Server whose startup() notifies after the application was imported, its lifespan startup ran and the
server accepts on the inherited socket. Tested with Debian 12's python3-uvicorn 0.17.6.

uvicorn itself never sends READY=1, and ReadyMode=exec would let a reload stop an old worker while the
new one is still importing the app."""

import asyncio
import importlib
import os
import socket
import sys

from uvicorn.server import Server

# The module, not the click command that the uvicorn package exports under the same name.
uvicorn_main = importlib.import_module("uvicorn.main")


def sd_notify(state):
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        s.sendto(state.encode(), address)


class NotifyingServer(Server):
    async def startup(self, sockets=None):
        await super().startup(sockets=sockets)
        # startup() sets should_exit when the lifespan startup failed: then the worker exits, unready.
        if not self.should_exit:
            sd_notify("READY=1")

    async def shutdown(self, sockets=None):
        # uvicorn 0.17 closes every connection without a request in progress at once, including those it
        # accepted a moment ago whose request it has not read yet: their clients get a reset. The socket
        # is shared with the other workers, so stop accepting first, then give the connections already
        # accepted time to deliver their request, which shutdown() then lets finish.
        for server in self.servers:
            server.close()
        await asyncio.sleep(0.5)
        await super().shutdown(sockets=sockets)


# uvicorn.main.run() makes its server from this module global.
uvicorn_main.Server = NotifyingServer

if __name__ == "__main__":
    sys.exit(uvicorn_main.main())
