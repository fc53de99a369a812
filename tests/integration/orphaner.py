#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A worker that leaves orphans: orphaner.py COUNT STATUS double-forks COUNT times (each grandchild outlives
its parent by a few ms, so that it is reparented to the nearest subreaper, corral, and exits there), then
exits with status STATUS while the last ones are still dying; with STATUS "sleep" it stays, for an hour.
test_orphans.py runs it, and tests/e2e/container.sh inside a container whose python3 is python3-minimal:
os, sys and time only."""

import os
import sys
import time

count, status = int(sys.argv[1]), sys.argv[2]
for i in range(count):
    pid = os.fork()
    if pid == 0:
        if os.fork() == 0:
            time.sleep(0.002 * (i % 5))
            os._exit(0)
        os._exit(0)
    os.waitpid(pid, 0)
if status == "sleep":
    time.sleep(3600)
os._exit(int(status))
