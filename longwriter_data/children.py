"""Child processes that never outlive the build: the local model server and the judging workers."""

from __future__ import annotations

import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """In a child: ask the kernel to SIGTERM us when the parent dies, even by SIGKILL, and leave Ctrl-C (which the
    terminal sends to the whole process group) to the parent, which stops its children itself."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)
