"""Brute-force protection for sign-in. Every attempt is counted BEFORE the password is checked, in one atomic
script, so parallel guesses cannot slip past a limit. Counters live in Redis, so every replica agrees.

* Per (e-mail, address): more than 5 attempts in 15 minutes without a success lock that pair for 30 minutes
  (429 ``login_locked`` with Retry-After). A stranger's failures lock the stranger, not the owner signing in
  from their own address.
* Per address: more than 20 attempts in 15 minutes, whatever the e-mails, lock the address for 30 minutes
  (one address trying many accounts).
* Per e-mail, all addresses together: never a lock (a stranger could keep the owner out for ever with a few
  wrong guesses every half hour), only a short progressive delay once the e-mail has had 5 attempts in 15
  minutes: 0.25 s, doubling, at most 2 s. It is slept on the event loop (``asyncio.sleep``), so it holds no
  thread, no connection to PostgreSQL and no hashing slot, and other requests go on meanwhile.

"Address" is the client's limit key (``clientip.limit_key``): an IPv4 address, or an IPv6 client's /64.
A success clears the pair's count and takes its attempt off the address's and the e-mail's; an attempt whose
password could not be checked (hashing busy) is taken off all three. If Redis is away, sign-in still works (logged).
"""

from __future__ import annotations

import asyncio
import logging

from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy.errors import RateLimited

log = logging.getLogger("webrana.loginguard")
PAIR_MAX_ATTEMPTS = 5  # per (e-mail, address): a person mistypes a few times, a guesser needs many more
IP_MAX_ATTEMPTS = 20  # per address, any e-mails: a household or office behind one address
WINDOW_S = 15 * 60
BLOCK_S = 30 * 60
EMAIL_DELAY_AFTER = 5  # attempts on one e-mail in the window (all addresses) before each further one is delayed
EMAIL_DELAY_FIRST_S = 0.25  # the first delay; each further attempt doubles it
EMAIL_DELAY_MAX_S = 2.0  # the owner waits at most this long while their e-mail is under attack

# KEYS: pair count, pair block, address count, address block, e-mail count. ARGV: pair max, address max, window,
# block. Returns {seconds until the block ends (0: go ahead), the e-mail's attempts in the window before this one}.
ATTEMPT_SCRIPT = """
local t = math.max(redis.call('TTL', KEYS[2]), redis.call('TTL', KEYS[4]))
if t > 0 then return {t, 0} end
local p = redis.call('INCR', KEYS[1])
if p == 1 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
local i = redis.call('INCR', KEYS[3])
if i == 1 then redis.call('EXPIRE', KEYS[3], ARGV[3]) end
if p > tonumber(ARGV[1]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[4])
  redis.call('DEL', KEYS[1])
  return {tonumber(ARGV[4]), 0}
end
if i > tonumber(ARGV[2]) then
  redis.call('SET', KEYS[4], '1', 'EX', ARGV[4])
  redis.call('DEL', KEYS[3])
  return {tonumber(ARGV[4]), 0}
end
local e = redis.call('INCR', KEYS[5])
if e == 1 then redis.call('EXPIRE', KEYS[5], ARGV[3]) end
return {0, e - 1}
"""

# KEYS: pair count, address count, e-mail count. ARGV: 1 to clear the pair (a success), 0 to take one attempt off
# it (not checked). Never creates a key or takes a count below zero (a key may have expired meanwhile).
UNCOUNT_SCRIPT = """
if ARGV[1] == '1' then redis.call('DEL', KEYS[1]) end
for i = (ARGV[1] == '1') and 2 or 1, 3 do
  if (tonumber(redis.call('GET', KEYS[i])) or 0) > 0 then redis.call('DECR', KEYS[i]) end
end
return 0
"""


def email_delay(previous_attempts: int) -> float:
    """Seconds an attempt waits, given the e-mail's attempts in the window before it (all addresses)."""
    if previous_attempts < EMAIL_DELAY_AFTER:
        return 0.0
    return min(EMAIL_DELAY_MAX_S, EMAIL_DELAY_FIRST_S * float(1 << min(previous_attempts - EMAIL_DELAY_AFTER, 8)))


class LoginGuard:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._attempt = redis.register_script(ATTEMPT_SCRIPT)
        self._uncount = redis.register_script(UNCOUNT_SCRIPT)

    @staticmethod
    def _keys(email: str, ip: str) -> tuple[str, str, str, str, str]:
        e = email.lower()  # an e-mail never holds ':' (jsonio.EMAIL_RE), so "<address>:<e-mail>" is unambiguous
        return (f"login:count:pair:{ip}:{e}", f"login:block:pair:{ip}:{e}", f"login:count:ip:{ip}",
                f"login:block:ip:{ip}", f"login:count:email:{e}")

    async def attempt(self, email: str, ip: str) -> None:
        """Count this attempt of ``email`` from ``ip`` (the limit key); RateLimited if the pair or the address is
        locked. Returns after the e-mail's progressive delay, if any."""
        try:
            wait, previous = await self._attempt(keys=list(self._keys(email, ip)),
                                                 args=[PAIR_MAX_ATTEMPTS, IP_MAX_ATTEMPTS, WINDOW_S, BLOCK_S])
        except RedisError as exc:
            log.warning("sign-in lockout unavailable (Redis); attempt allowed", extra={"error": type(exc).__name__})
            return
        if int(wait) > 0:
            raise RateLimited("too many sign-in attempts; try again later", retry_after=int(wait), code="login_locked")
        delay = email_delay(int(previous))
        if delay:
            await asyncio.sleep(delay)

    async def succeeded(self, email: str, ip: str) -> None:
        await self._take_back(email, ip, clear_pair=True)

    async def not_checked(self, email: str, ip: str) -> None:
        """The attempt ended before its password was checked (no hashing slot free): it was no guess."""
        await self._take_back(email, ip, clear_pair=False)

    async def _take_back(self, email: str, ip: str, *, clear_pair: bool) -> None:
        pair, _, address, _, mail = self._keys(email, ip)
        try:
            await self._uncount(keys=[pair, address, mail], args=[1 if clear_pair else 0])
        except RedisError as exc:
            log.warning("could not take back a sign-in attempt (Redis)", extra={"error": type(exc).__name__})
