"""Ctrl+C held back while a command imports its libraries and loads its models.

An interrupt that lands inside an import leaves that library half imported, and some libraries catch it on the
way: the next use then fails with a misleading sentence ("not a readable safetensors file" from a half-imported
torch) or a traceback (a half-imported pydicom: "partially initialized module"). Startup is a few seconds; the
interrupt is kept until it is over and raised then, so the command stops with its own "Interrupted." line.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator


@contextlib.contextmanager
def interrupt_deferred() -> Iterator[None]:
    """Run the block with Ctrl+C held back; raise :class:`KeyboardInterrupt` after it if one came meanwhile.

    Only where Python's own Ctrl+C handler is in place, in the main thread (elsewhere the block runs as it is).
    """
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    pressed = []
    signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pressed:
        raise KeyboardInterrupt
