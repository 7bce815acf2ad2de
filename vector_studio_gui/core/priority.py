"""Background work yields the CPU to the thread that draws the window.

On a 2-core machine an ingest keeps both cores busy (image loaders, the image tower), and the
GUI thread waited its turn behind them: the event loop stalled up to ~70-100 ms while 2,000
charts were added. With the worker threads one step lower (Linux nice +5) the scheduler runs
the GUI thread as soon as it wakes (worst stall ~27 ms) and the ingest is as fast as before,
because its threads still share the cores equally among themselves (benchmarks/README.md,
target 5). The CLI does not lower anything: it has no window to keep responsive. Linux and
Windows; macOS has no per-thread priority in the standard library (its QoS classes need a
native call, which this package does not make). ONNX Runtime's threads inherit the priority of
the thread that makes a session: the image tower made by an ingest stays lowered (ingest is its
main use), while the chart-text pass makes the sentence model, which also answers typed
queries, before it lowers itself.
"""

from __future__ import annotations

import os
import sys
import threading

#: Linux nice steps below the process's main thread
STEP = 5

_state = threading.local()


def lower_thread_priority() -> bool:
    """Run the calling thread below normal priority; idempotent. Threads it starts afterwards
    inherit that on Linux; elsewhere a pool passes :func:`pool_initializer`'s result.
    Returns whether the priority is lowered (False where the platform refused)."""
    if getattr(_state, "lowered", False):
        return True
    try:
        ok = _lower()
    except (OSError, AttributeError, ValueError):
        ok = False
    _state.lowered = ok
    return ok


def is_lowered() -> bool:
    return getattr(_state, "lowered", False)


def pool_initializer():
    """The initializer for a pool made on this thread, so its threads run at this thread's
    priority (None when it runs at normal priority)."""
    return lower_thread_priority if is_lowered() else None


def _lower() -> bool:
    if sys.platform.startswith("linux"):
        tid = threading.get_native_id()  # Linux applies PRIO_PROCESS to one thread (a task)
        target = min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + STEP)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
        return True
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        import ctypes

        kernel32 = ctypes.windll.kernel32
        kernel32.GetCurrentThread.restype = ctypes.c_void_p  # a HANDLE, not a C int
        kernel32.SetThreadPriority.argtypes = (ctypes.c_void_p, ctypes.c_int)
        thread_priority_below_normal = -1
        return bool(kernel32.SetThreadPriority(kernel32.GetCurrentThread(),
                                               thread_priority_below_normal))
    return False
