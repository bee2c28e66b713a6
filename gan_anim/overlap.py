"""Pipeline stages that run side by side: an iterator or a consumer in a background
thread, joined to the rest by a bounded queue (so memory stays flat).

Decoding (ffmpeg), the generator (torch), OpenCV and numpy release the GIL, so on a
multi-core CPU one stage works while another waits.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, exc: BaseException):
        self.exc = exc


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set first; True if it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def prefetch(items: Iterable, size: int = 2) -> Iterator:
    """Yield ``items`` as produced by a background thread, at most ``size`` ahead.

    An exception in the producer is raised here, in the consumer; when the consumer
    stops early (or fails), the producer is told to stop and the thread is joined.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    stop = threading.Event()

    def run():
        try:
            for item in items:
                if not _put(q, item, stop):
                    return
            _put(q, _DONE, stop)
        except BaseException as exc:  # handed to the consumer
            _put(q, _Failure(exc), stop)
        finally:
            close = getattr(items, "close", None)
            if close is not None and stop.is_set():
                close()

    thread = threading.Thread(target=run, name="gan-anim-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.exc.with_traceback(item.exc.__traceback__)
            yield item
    finally:
        stop.set()
        thread.join()


class Consumer:
    """Call ``handle(item)`` for each ``put`` item in a background thread, at most ``size``
    items waiting. ``finish()`` waits for all of them; an exception in ``handle`` is raised
    by the next ``put`` or by ``finish``. ``abort()`` drops what is waiting and stops."""

    def __init__(self, handle: Callable, size: int = 2, name: str = "gan-anim-consumer"):
        self._handle = handle
        self._q: queue.Queue = queue.Queue(maxsize=max(1, size))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self):
        while True:
            item = self._q.get()
            if item is _DONE or self._stop.is_set():
                return
            try:
                self._handle(item)
            except BaseException as exc:
                self._error = exc
                self._stop.set()
                return

    def _raise(self):
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def put(self, item) -> None:
        self._raise()
        if not _put(self._q, item, self._stop):
            self._raise()

    def finish(self) -> None:
        _put(self._q, _DONE, self._stop)
        self._thread.join()
        self._raise()

    def abort(self) -> None:
        self._stop.set()
        while True:  # unblock the thread if it waits for an item
            try:
                self._q.get_nowait()
            except queue.Empty:
                break
        if self._thread.is_alive():
            _put(self._q, _DONE, threading.Event())
        self._thread.join()


class Background:
    """``fn()`` running in a background thread; ``result()`` waits for it and returns its
    value or raises its exception (each time it is asked)."""

    def __init__(self, fn: Callable, name: str = "gan-anim-background"):
        self._value = self._error = None
        self._thread = threading.Thread(target=self._run, args=(fn,), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable) -> None:
        try:
            self._value = fn()
        except BaseException as exc:  # handed to result()
            self._error = exc

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
