"""`python -m pocketkube.kubelet.runtime.reaper PIDFILE -- runc ... exec -d ...`: the exit code of
a detached `runc exec`.

An exec with a terminal must run detached (`runc exec -d --console-socket`): runc hands the pty
to us and exits, and the exec'd process is orphaned. This small process is a child subreaper, so
the orphan becomes its child; it waits for it and exits with the process's exit code (128+signal
when killed), which is how the agent learns it without becoming a subreaper itself (that would
make every daemonized conmon its child).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36


def main(argv: list[str]) -> int:
    pid_file, sep, command = argv[0], argv[1], argv[2:]
    if sep != "--" or not command:
        print("usage: reaper PIDFILE -- COMMAND...", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print(f"prctl: {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 255
    code = subprocess.call(command)
    if code != 0:
        return code
    with open(pid_file) as f:
        target = int(f.read().strip())
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if pid == target:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sys.exit(main(sys.argv[1:]))
