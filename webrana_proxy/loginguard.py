"""Brute-force protection for sign-in: 5 failures in 15 minutes for an e-mail, or 20 from one address, block
further attempts for 30 minutes (429 with Retry-After). Counters live in Redis, so every replica agrees."""

from __future__ import annotations

from redis.asyncio import Redis

from webrana_proxy.errors import RateLimited

EMAIL_MAX_FAILURES = 5
IP_MAX_FAILURES = 20
FAILURE_WINDOW_S = 15 * 60
BLOCK_S = 30 * 60

# KEYS: failure counter, block key. ARGV: max failures, window s, block s. Returns 1 when this failure blocks.
FAIL_SCRIPT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
if n >= tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


class LoginGuard:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._fail = redis.register_script(FAIL_SCRIPT)

    @staticmethod
    def _keys(kind: str, who: str) -> list[str]:
        return [f"login:fail:{kind}:{who}", f"login:block:{kind}:{who}"]

    async def check(self, email: str, ip: str) -> None:
        email_block = self._keys("email", email.lower())[1]
        ip_block = self._keys("ip", ip)[1]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.ttl(email_block)
            pipe.ttl(ip_block)
            ttls = await pipe.execute()
        wait = max(int(t) for t in ttls)
        if wait > 0:
            raise RateLimited("too many failed sign-in attempts; try again later", retry_after=wait,
                              code="login_locked")

    async def failed(self, email: str, ip: str) -> None:
        await self._fail(keys=self._keys("email", email.lower()),
                         args=[EMAIL_MAX_FAILURES, FAILURE_WINDOW_S, BLOCK_S])
        await self._fail(keys=self._keys("ip", ip), args=[IP_MAX_FAILURES, FAILURE_WINDOW_S, BLOCK_S])

    async def succeeded(self, email: str) -> None:
        await self._redis.delete(self._keys("email", email.lower())[0])
