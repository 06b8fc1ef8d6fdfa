"""Child processes that never outlive the build: the local model server and the judging workers."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int, death_signal: int = signal.SIGTERM,
                    ignored: tuple[int, ...] = (signal.SIGINT,)) -> None:
    """In a child: ask the kernel to send `death_signal` when the parent dies, even by SIGKILL, and leave signals
    sent to the whole process group (Ctrl-C from the terminal, `timeout`, systemd) to the parent, which stops its
    children itself."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, death_signal)
    for signum in ignored:
        signal.signal(signum, signal.SIG_IGN)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
