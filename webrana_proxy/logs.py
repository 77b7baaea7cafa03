"""Logging set-up: one JSON object per line (or plain text for local reading). Never a body or a secret:
callers pass only the fields they mean to log, through ``extra``."""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
from collections import deque
from typing import Any

import orjson

BATCH_INTERVAL = 0.05  # seconds a log line may wait for its batch (a warning or worse does not wait)
BATCH_WAKE = 256  # lines that wake the writer early
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self._stamp = (-1, "")  # (second, its text): one object, so threads that log at once never mix them

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        stamped, stamp = self._stamp
        if second != stamped:  # one strftime a second, not one a line
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._stamp = (second, stamp)
        fields = record.__dict__
        out: dict[str, Any] = {
            "ts": f"{stamp}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in fields.items():  # the caller's ``extra`` fields, in the order given
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = " ".join(f"{k}={v}" for k, v in record.__dict__.items()
                          if k not in _STANDARD and not k.startswith("_"))
        base = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        text = f"{base} {extras}" if extras else base
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class _BatchingHandler(logging.Handler):
    """Formats the record where it is logged (~3 us for a call's line) and puts the line on a deque: no lock, no
    thread woken per line. A writer thread writes what waits every ``BATCH_INTERVAL`` (one ``write`` a batch), at
    once for a warning or worse, or when ``BATCH_WAKE`` lines wait. So the event loop never blocks on the log's
    file or pipe.

    The writer thread formatted the records itself until the usage journal's measurements showed what that cost:
    it held the GIL while it formatted a batch (up to hundreds of lines), it took the GIL whenever the loop let go
    of it for a system call, and the loop then waited for it. At c=64, journal on / off, json calls/s went from
    x0.983 to x1.003 (`bench/README.md`, "Fifth session"). A line formatted at once also shows the values as they
    were when it was logged, not as the loop may have changed them since."""

    def __init__(self, target: logging.StreamHandler[Any]) -> None:
        super().__init__()
        self._target = target
        self._pending: deque[str] = deque()
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="log-writer")
        self._thread.start()

    def handle(self, record: logging.LogRecord) -> bool:  # no handler lock: deque.append is atomic
        try:
            line = self._target.format(record)
        except Exception:  # a record that cannot be formatted: reported the logging module's way, others go on
            self._target.handleError(record)
            return True
        self._pending.append(line)
        if record.levelno >= logging.WARNING or len(self._pending) >= BATCH_WAKE:
            self._wake.set()
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(BATCH_INTERVAL)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        pending, target = self._pending, self._target
        lines = []
        while pending:
            lines.append(pending.popleft())
        if lines:
            try:
                target.stream.write("\n".join(lines) + "\n")
                target.flush()
            except (OSError, ValueError):  # stderr closed or broken: logging must never take the process down
                pass

    def stop(self) -> None:
        """Write what waits and end the writer (at exit)."""
        self._stopping = True
        self._wake.set()
        self._thread.join(5)


def configure(fmt: str, level: str) -> None:
    # What no line of ours shows, the logging module need not collect for every record (the logging HOWTO's
    # "Optimization" section): the caller's frame, thread, process id (a getpid syscall per record).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    target = logging.StreamHandler(sys.stderr)
    target.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler = _BatchingHandler(target)
    atexit.register(handler.stop)  # writes what waits before the process exits
    root = logging.getLogger()
    for old in root.handlers:  # configured again in this process (tests build several apps): one writer
        if isinstance(old, _BatchingHandler):
            old.stop()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
