#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// A Node.js worker for corral, with no dependencies beyond Node itself (tested with Node 20).
//
//   corral --listen 127.0.0.1:8080 --count 4 -- /usr/bin/node contrib/examples/node/server.js
//
// - The listening socket is fd 3 (LISTEN_FDS/LISTEN_PID, systemd style): listen({fd: 3}).
//   Without LISTEN_FDS (run by hand) it binds 127.0.0.1:$PORT (default 8080) instead.
// - Readiness: Node has no sd_notify, so once listening it runs `systemd-notify --ready`, which
//   inherits NOTIFY_SOCKET. corral counts a datagram from any process below a worker for that
//   worker, so the child's READY=1 makes this worker ready.
// - SIGTERM (corral's default stop signal): stop accepting, answer what comes on open connections
//   with "Connection: close", let idle keep-alive connections time out (2 s), then exit 0.

'use strict';

const http = require('http');
const { execFile } = require('child_process');

const slot = process.env.WORKER_INDEX ?? '-';
const generation = process.env.WORKER_GENERATION ?? '-';

const server = http.createServer((req, res) => {
  const body = `slot=${slot} pid=${process.pid} generation=${generation} runtime=node/${process.versions.node}\n`;
  const headers = {
    'Content-Type': 'text/plain',
    'Content-Length': Buffer.byteLength(body),
    'X-Worker-Slot': slot,
    'X-Worker-Pid': String(process.pid),
    'X-Worker-Generation': generation,
  };
  if (stopping) headers.Connection = 'close';
  res.writeHead(200, headers);
  res.end(body);
});

// An idle keep-alive connection is closed after this long; it also bounds the drain at stop (below).
server.keepAliveTimeout = 2000;

let stopping = false;

function notifyReady() {
  if (!process.env.NOTIFY_SOCKET) return; // not under corral or systemd
  // Not --no-block: systemd-notify then waits until corral has read the datagram (BARRIER=1). corral
  // finds the worker a datagram belongs to by walking up the sender's parents in /proc when it reads
  // it; a systemd-notify that already exited and was reaped by then cannot be traced back to this
  // worker, and its READY=1 is dropped. (Run as root, systemd-notify sends READY=1 in the name of its
  // parent, this process, which avoids the walk; as any other user it sends in its own name.)
  execFile('systemd-notify', ['--ready'], { timeout: 10000 }, (err, stdout, stderr) => {
    if (!err) return;
    console.error(`node worker ${slot}: systemd-notify --ready failed: ${err.message} ${stderr}`.trim());
    // Not installed: this worker can never become ready, so fail now rather than at ReadyTimeoutSec=.
    // (Use --ready-mode exec or delay on a machine without systemd-notify.)
    if (err.code === 'ENOENT') process.exit(1);
  });
}

function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.error(`node worker ${slot} (pid ${process.pid}): ${signal}, draining`);
  // Stop accepting; the callback runs once every open connection has ended. Every answer from now on
  // carries "Connection: close", and a keep-alive connection that stays idle is closed after
  // keepAliveTimeout, so the drain ends within that (plus the slowest request).
  //
  // This is net.Server's close on purpose. http.Server's close() (Node >= 19) also calls
  // closeIdleConnections(), which resets every keep-alive connection between two requests at once:
  // a client sending its next request at that moment sees the connection close without an answer and
  // has to retry it. Node releases after 20 also count a connection that was accepted but has not
  // sent its request yet as idle (nodejs/node#63470): that client gets no answer at all.
  require('net').Server.prototype.close.call(server, () => process.exit(0));
  // corral SIGKILLs after StopTimeoutSec= anyway; do not wait that long for a stuck client.
  setTimeout(() => process.exit(0), 10000).unref();
}

process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));

server.on('listening', notifyReady);
server.on('error', (err) => {
  console.error(`node worker ${slot}: ${err.message}`);
  process.exit(1);
});

const listenFds = parseInt(process.env.LISTEN_FDS || '0', 10);
const listenPid = parseInt(process.env.LISTEN_PID || '0', 10);
if (listenFds >= 1 && listenPid === process.pid) {
  server.listen({ fd: 3 });
} else {
  server.listen({ host: '127.0.0.1', port: parseInt(process.env.PORT || '8080', 10) });
}
