"""Stream what a blocking iterator yields, the iterator staying on one thread.

Starlette would call ``next()`` on a sync iterator from whichever pool thread
is free; a read model's iterator may hold a database cursor that belongs to
the thread that opened it (SQLite's does). So one thread drives the
iterator and hands chunks over through a bounded queue.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator

_DONE = object()


def in_one_thread(produce: Callable[[], Iterator[bytes]], buffer: int = 64) -> Iterator[bytes]:
    chunks: queue.Queue[object] = queue.Queue(maxsize=buffer)
    stop = threading.Event()

    def run() -> None:
        try:
            for chunk in produce():
                while not stop.is_set():
                    try:
                        chunks.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            _hand_over(_DONE)
        except BaseException as e:  # handed to the consumer, which re-raises it
            _hand_over(e)

    def _hand_over(item: object) -> None:
        while not stop.is_set():
            try:
                chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    thread = threading.Thread(target=run, name="aero-export", daemon=True)
    thread.start()
    try:
        while True:
            item = chunks.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            assert isinstance(item, bytes)
            yield item
    finally:
        # The client may go away mid-stream: let the producer end too.
        stop.set()
