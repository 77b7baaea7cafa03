"""Brute-force protection for sign-in: more than 5 attempts in 15 minutes for an e-mail without a success (or 20
from one address) block further attempts for 30 minutes (429 with Retry-After). Every attempt is counted BEFORE the
password is checked, in one atomic script, so parallel guesses cannot slip past the limit; a success clears the
e-mail's count. Counters live in Redis, so every replica agrees. If Redis is away, sign-in still works (logged)."""

from __future__ import annotations

import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy.errors import RateLimited

log = logging.getLogger("webrana.loginguard")
EMAIL_MAX_ATTEMPTS = 5
IP_MAX_ATTEMPTS = 20
WINDOW_S = 15 * 60
BLOCK_S = 30 * 60

# KEYS: e-mail count, e-mail block, address count, address block. ARGV: e-mail max, address max, window, block.
# Returns 0 (go ahead) or the seconds until the block ends.
ATTEMPT_SCRIPT = """
local t = math.max(redis.call('TTL', KEYS[2]), redis.call('TTL', KEYS[4]))
if t > 0 then return t end
local e = redis.call('INCR', KEYS[1])
if e == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local i = redis.call('INCR', KEYS[3])
if i == 1 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
if e > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[4])
end
if i > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[4])
  redis.call('DEL', KEYS[3])
  return tonumber(ARGV[4])
end
return 0
"""


class LoginGuard:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._attempt = redis.register_script(ATTEMPT_SCRIPT)

    @staticmethod
    def _keys(email: str, ip: str) -> list[str]:
        e = email.lower()
        return [f"login:count:email:{e}", f"login:block:email:{e}", f"login:count:ip:{ip}", f"login:block:ip:{ip}"]

    async def attempt(self, email: str, ip: str) -> None:
        """Count this attempt; RateLimited if the e-mail or the address is blocked."""
        try:
            wait = int(await self._attempt(keys=self._keys(email, ip),
                                           args=[EMAIL_MAX_ATTEMPTS, IP_MAX_ATTEMPTS, WINDOW_S, BLOCK_S]))
        except RedisError as exc:
            log.warning("sign-in lockout unavailable (Redis); attempt allowed", extra={"error": type(exc).__name__})
            return
        if wait > 0:
            raise RateLimited("too many sign-in attempts; try again later", retry_after=wait, code="login_locked")

    async def succeeded(self, email: str, ip: str) -> None:
        keys = self._keys(email, ip)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.delete(keys[0])
                pipe.decr(keys[2])
                await pipe.execute()
        except RedisError as exc:
            log.warning("could not clear sign-in attempts (Redis)", extra={"error": type(exc).__name__})
