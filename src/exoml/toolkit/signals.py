"""Ctrl-C and SIGTERM as a request, answered at a safe point.

Raising KeyboardInterrupt wherever the signal lands can leave a lock held (a multiprocessing
pool's, a file half-written); code that must stop cleanly asks instead, between two units of
work, and stops there.
"""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager


@contextmanager
def deferred_interrupts():
    """While the block runs, SIGINT / SIGTERM only set a flag. Yields a function that says whether a
    stop was asked; the caller checks it between two units of work (training steps, decoded chunks)
    and stops there; a stop asked after its last check raises KeyboardInterrupt when the block ends.
    Outside the main thread nothing is installed (the flag stays off)."""
    asked = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, lambda signum, frame: asked.append(signum))
    try:
        yield lambda: bool(asked)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    if asked:  # asked after the block's last check (the block ended normally): stop now, not never
        raise KeyboardInterrupt
