"""Reading what a program writes to a pipe or a pty, for tests that drive `kubectl exec -it`,
`kubectl run -i --tty` and `kubectl logs -f` as a user at a terminal would."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Callable


def read_until(fd: int, done: Callable[[bytes], bool], timeout: float = 20) -> bytes:
    """Read from `fd` until `done(everything read)`; EOF or EIO (a closed pty) ends it too."""
    data = b""
    deadline = time.monotonic() + timeout
    while not done(data):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out; read so far: {data!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the pty's other side is closed
            break
        if not chunk:
            break
        data += chunk
    return data
