"""Fixed-window counters in Redis for the e-mail routes (resend a verification link, ask for a reset link):
one atomic script per check, so every replica counts together. If Redis is away the request is allowed (and
logged), as sign-ups are: these limits protect inboxes and the SMTP quota, not the product's integrity."""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("webrana.mail")

# KEYS: the window's counter. ARGV: window ms. Returns {count including this one, ms until the window ends}.
WINDOW_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {n, redis.call('PTTL', KEYS[1])}
"""


@dataclass(frozen=True, slots=True)
class Window:
    name: str  # part of the Redis key: what is counted (e.g. "forgot:ip")
    limit: int  # at most this many per window
    seconds: int


class Throttle:
    def __init__(self, redis: Redis) -> None:
        self._script = redis.register_script(WINDOW_SCRIPT)

    async def hit(self, window: Window, subject: str, now: float | None = None) -> int:
        """Count one for ``subject`` in ``window``; 0 when allowed, else the seconds until it is allowed again."""
        t = now if now is not None else time.time()
        key = f"mail:{window.name}:{subject}:{int(t) // window.seconds}"
        try:
            count, ttl_ms = await self._script(keys=[key], args=[window.seconds * 1000])
        except (RedisError, OSError) as exc:
            log.warning("e-mail limit unavailable (Redis); allowed", extra={"limit": window.name,
                                                                           "error": type(exc).__name__})
            return 0
        if int(count) <= window.limit:
            return 0
        return max(1, math.ceil(int(ttl_ms) / 1000))
