"""Argon2id password hashing on a small pool of its own threads, behind a gate of ``concurrency`` permits.

Every hash and verification holds ``HASH_MEMORY_BYTES`` and a core while it runs, and anyone can ask for one
(sign-up, sign-in), so they never run on the event loop, never take the default executor's threads from other
work, and at most ``concurrency`` run at once in a process, whatever the traffic: the memory they can hold is
``concurrency x HASH_MEMORY_BYTES``. A caller waits at most ``wait`` seconds for a permit, then gets 503 with
Retry-After (``HashingBusy``). A permit is given back when the thread's work ends, not when its caller goes
away, so a cancelled request cannot let more hashes run than there are permits.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import math
import re
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from webrana_proxy.errors import ServiceUnavailable, ValidationFailed
from webrana_proxy.settings import DEFAULT_PASSWORD_HASH_CONCURRENCY, DEFAULT_PASSWORD_HASH_WAIT

MIN_PASSWORD_LENGTH = 8  # the product's password policy
MAX_PASSWORD_LENGTH = 256  # bounds the Argon2 input; nobody types more
# OWASP Password Storage Cheat Sheet, Argon2id: m = 19 MiB, t = 2, p = 1 (~20 ms here). Hashes stored with other
# parameters (before: argon2-cffi's default, m = 64 MiB, t = 3, p = 4) are rehashed at the next sign-in.
ARGON2_MEMORY_KIB = 19 * 1024
ARGON2_TIME_COST = 2
ARGON2_PARALLELISM = 1
HASH_MEMORY_BYTES = ARGON2_MEMORY_KIB * 1024  # what one hash or verification holds while it runs

T = TypeVar("T")


class HashingBusy(ServiceUnavailable):
    default_code = "password_hashing_busy"


def check_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at least {MIN_PASSWORD_LENGTH} characters", param="password",
                               code="weak_password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(f"password must be at most {MAX_PASSWORD_LENGTH} characters", param="password",
                               code="weak_password")
    if not re.search(r"[A-Z]", password) or not re.search(r"[0-9]", password):
        raise ValidationFailed("password must contain an upper-case letter and a digit", param="password",
                               code="weak_password")


def owasp_hasher() -> PasswordHasher:
    return PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM,
                          type=Type.ID)


class Passwords:
    """``close()`` when done (the app does it in a cleanup context): it stops the hashing threads."""

    def __init__(self, concurrency: int = DEFAULT_PASSWORD_HASH_CONCURRENCY, wait: float = DEFAULT_PASSWORD_HASH_WAIT,
                 hasher: PasswordHasher | None = None) -> None:
        self.concurrency = concurrency
        self._wait = wait
        self._retry_after = str(max(1, math.ceil(wait)))
        self._hasher = hasher or owasp_hasher()
        self._threads = concurrent.futures.ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._permits = asyncio.Semaphore(concurrency)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        """(matches, new_hash). ``new_hash`` is set when the stored hash used other parameters."""
        return await self._run(self._verify_sync, stored_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of a real check, so timing does not reveal which e-mails have accounts."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash("Webrana-timing-equaliser-0")
        await self.verify(self._dummy_hash, password)

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one hashing permit for the block (waited for like a hash waits: HashingBusy after ``wait``)."""
        await self._acquire()
        try:
            yield
        finally:
            self._permits.release()

    async def _acquire(self) -> None:
        try:
            async with asyncio.timeout(self._wait):
                await self._permits.acquire()
        except TimeoutError:
            raise HashingBusy("too many sign-ups and sign-ins at this moment; retry in a moment",
                              headers={"Retry-After": self._retry_after}) from None

    async def _run(self, fn: Callable[..., T], *args: str) -> T:
        await self._acquire()
        loop = asyncio.get_running_loop()
        try:
            work = self._threads.submit(fn, *args)
        except BaseException:
            self._permits.release()
            raise
        work.add_done_callback(lambda _: _call_soon(loop, self._permits.release))
        return await asyncio.wrap_future(work)

    def _verify_sync(self, stored_hash: str, password: str) -> tuple[bool, str | None]:
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, None
        if self._hasher.check_needs_rehash(stored_hash):
            return True, self._hasher.hash(password)
        return True, None


def _call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    """From the hashing thread: run ``fn`` on the loop (nothing to do if the loop has closed meanwhile)."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(fn)
