"""Circuit breakers per provider key, so a dead key or provider is skipped fast instead of waited on.

A key's breaker opens after ``threshold`` failures in a row (429, 5xx, connection errors, timeouts, a stream that
broke before any content, and rejected keys: 401/403), each within ``FAILURE_WINDOW`` of the one before. While
open the key is skipped (the next key, or the alias's next hop, is tried). After ``cooldown`` one call may probe
it (half-open): success closes the breaker, failure opens it for another ``cooldown``.

State is in-process, per replica: each replica learns a dead key from its own calls (a handful of failed calls per
replica), which needs no shared state on the hot path. A key that never failed costs one truthiness test of an
empty dict per call; the bookkeeping runs only on failures and on the first success after one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from webrana_proxy.metrics import Metrics

FAILURE_WINDOW = 60.0  # seconds: failures further apart than this do not add up
MAX_TRACKED = 100_000  # keys with recent failures remembered per process (then forgotten, conservatively)


@dataclass(slots=True)
class _Tripped:
    provider: str
    until: float  # monotonic time the cool-down ends
    probing_since: float | None = None  # a half-open probe is out since then


class CircuitBoard:
    __slots__ = ("_cooldown", "_counting", "_metrics", "_threshold", "tripped")

    def __init__(self, metrics: Metrics, *, threshold: int, cooldown: float) -> None:
        self._metrics = metrics
        self._threshold = threshold
        self._cooldown = cooldown
        self._counting: dict[uuid.UUID, tuple[int, float]] = {}  # closed keys with recent failures
        self.tripped: dict[uuid.UUID, _Tripped] = {}  # open or half-open keys (read by the hot path)

    def allows(self, key_id: uuid.UUID) -> bool:
        """Whether a call may use this key now (a tripped key: only one probe per cool-down once it ended)."""
        t = self.tripped.get(key_id)
        if t is None:
            return True
        now = time.monotonic()
        if now < t.until or (t.probing_since is not None and now - t.probing_since < self._cooldown):
            return False
        if t.probing_since is None:
            self._move(t.provider, "open", "half_open")
        t.probing_since = now  # a probe abandoned (client gone) frees the slot after another cool-down
        return True

    def retry_after(self, key_id: uuid.UUID) -> float:
        t = self.tripped.get(key_id)
        return max(0.0, t.until - time.monotonic()) if t is not None else 0.0

    def failure(self, key_id: uuid.UUID, provider: str) -> None:
        now = time.monotonic()
        t = self.tripped.get(key_id)
        if t is not None:  # the probe failed (or a call that started before the breaker opened)
            if t.probing_since is not None:
                self._move(provider, "half_open", "open")
                t.probing_since = None
            t.until = now + self._cooldown
            return
        count, last = self._counting.get(key_id, (0, now))
        count = count + 1 if now - last <= FAILURE_WINDOW else 1
        if count < self._threshold:
            if len(self._counting) >= MAX_TRACKED:
                self._counting.clear()
            self._counting[key_id] = (count, now)
            return
        self._counting.pop(key_id, None)
        self.tripped[key_id] = _Tripped(provider, now + self._cooldown)
        self._metrics.circuit_opened.labels(provider).inc()
        self._move(provider, None, "open")

    def success(self, key_id: uuid.UUID) -> None:
        if self._counting:
            self._counting.pop(key_id, None)
        if self.tripped:
            t = self.tripped.pop(key_id, None)
            if t is not None:
                self._move(t.provider, "half_open" if t.probing_since is not None else "open", None)

    def state(self, key_id: uuid.UUID) -> str:
        t = self.tripped.get(key_id)
        if t is None:
            return "closed"
        return "half_open" if t.probing_since is not None else "open"

    def _move(self, provider: str, old: str | None, new: str | None) -> None:
        gauge = self._metrics.circuit_breakers
        if old is not None:
            gauge.labels(provider, old).dec()
        if new is not None:
            gauge.labels(provider, new).inc()
