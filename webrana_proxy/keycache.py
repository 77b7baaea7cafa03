"""The in-process cache of resolved proxy keys: who is calling, their plan and limits, and their provider
keys already decrypted, their aliases. A bounded LRU with a TTL; a miss costs one PostgreSQL query.

Each entry carries the key's rules (``keyrules.KeyRules``: expiry, allowed models with the globs compiled once,
per-key rate, spend caps of the key and its account), so the hot path never reads them from PostgreSQL.

A team key (``proxy_api_keys.org_id`` set) resolves to the team's workspace: the team's provider keys (sealed with
the team bound), the team's plan, and the workspace id the limits count under; it resolves only while its holder is
still a member (aliases stay the holder's own). Entries are indexed by user and by workspace, so an invalidation
names either.

Changes (revoked proxy key, a key's rules, provider key added or deleted, alias changed, user suspended, plan,
limits or spend cap changed, a member removed) are published on Redis; every replica's listener drops that user's
or workspace's entries at once. If the listener loses Redis, it clears the whole cache when it reconnects (it may
have missed messages).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import RedisError

from webrana_proxy.aliases import Alias, from_row
from webrana_proxy.billing.plans import get_plan
from webrana_proxy.crypto import DecryptionFailed, Keyring, Sealed
from webrana_proxy.keyrules import KeyRules
from webrana_proxy.tasks import background

log = logging.getLogger("webrana.keycache")
CHANNEL = "webrana:keycache:invalidate"
NEGATIVE_TTL = 5.0  # seconds an unknown key is remembered, so guessing keys cannot hammer PostgreSQL
MAX_TRACKED_INVALIDATIONS = 10_000  # users whose recent invalidation is remembered against in-flight loads
RECONNECT_DELAY = 0.5  # seconds between pub/sub reconnect attempts
SIGNAL_PREFIX = "signal:"  # other in-process caches ride the same channel: "signal:<name>" (e.g. prices)


@dataclass(frozen=True, slots=True)
class ProviderKey:
    id: uuid.UUID
    key: str


@dataclass(slots=True)
class Principal:
    user_id: uuid.UUID  # who holds the key (in a team: the member)
    user_id_str: str
    workspace_id: uuid.UUID  # whose limits and keys: the user's own (= user_id), or the team's (= org_id)
    workspace_id_str: str
    org_id: uuid.UUID | None
    proxy_key_id: uuid.UUID
    key_prefix: str
    plan: str
    active: bool
    burst_per_minute: int
    monthly_requests: int
    provider_keys: dict[str, tuple[ProviderKey, ...]]
    rules: KeyRules | None = None  # the key's own rules and the account's spend cap; None: none at all
    rr: dict[str, int] = field(default_factory=dict)  # round-robin position per provider
    aliases: dict[str, Alias] = field(default_factory=dict)  # the user's aliases by name (wbr/...)

    def keys_in_order(self, provider_id: str, keyless: uuid.UUID | None = None) -> tuple[ProviderKey, ...]:
        """This provider's keys, starting at the next one in turn, so calls spread across them. ``keyless`` (an
        admin's upstream that needs no key): without a key of the user's own, one empty key with that id."""
        keys = self.provider_keys.get(provider_id, ())
        if len(keys) < 2:
            return keys or ((ProviderKey(keyless, ""),) if keyless is not None else ())
        start = self.rr.get(provider_id, 0) % len(keys)
        self.rr[provider_id] = start + 1
        return keys[start:] + keys[:start]


def _index_ids(principal: Principal) -> set[uuid.UUID]:
    """The ids an entry is dropped by: its holder and its workspace (a team: whose plan it runs on too)."""
    return {principal.user_id, principal.workspace_id}


class KeyCache:
    def __init__(self, pool: asyncpg.Pool, redis: Redis, keyring: Keyring, *, max_size: int, ttl: float) -> None:
        self._pool = pool
        self._redis = redis
        self._keyring = keyring
        self._max = max_size
        self._ttl = ttl
        self._entries: OrderedDict[bytes, tuple[float, Principal | None]] = OrderedDict()
        self._by_user: dict[uuid.UUID, set[bytes]] = {}
        self._loading: dict[bytes, asyncio.Task[Principal | None]] = {}
        self._generation = 0  # bumped by every invalidation
        self._dropped_at: dict[uuid.UUID, int] = {}  # user -> generation of their last invalidation
        self._cleared_at = 0  # generation of the last full clear
        self._signals: dict[bytes, Callable[[], None]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def peek(self, key_hash: bytes) -> tuple[bool, Principal | None]:
        """(found, principal) from memory only: ``found`` False means resolving would cost a query."""
        entry = self._entries.get(key_hash)
        if entry is not None and entry[0] > time.monotonic():
            self._entries.move_to_end(key_hash)
            return True, entry[1]
        return False, None

    async def resolve(self, key_hash: bytes) -> Principal | None:
        entry = self._entries.get(key_hash)
        if entry is not None and entry[0] > time.monotonic():
            self._entries.move_to_end(key_hash)
            return entry[1]
        task = self._loading.get(key_hash)
        if task is None:
            # One load per key, in a task of its own: a caller that goes away cancels only its own wait.
            task = asyncio.create_task(self._load(key_hash), name="keycache-load")
            self._loading[key_hash] = task
            task.add_done_callback(functools.partial(self._loaded, key_hash, self._generation))
        return await asyncio.shield(task)

    def _loaded(self, key_hash: bytes, generation: int, task: asyncio.Task[Principal | None]) -> None:
        self._loading.pop(key_hash, None)
        if task.cancelled() or task.exception() is not None:
            return  # the waiters see the error; nothing is cached
        principal = task.result()
        # An invalidation that happened while this load ran may postdate what it read: do not cache it then.
        if generation < self._cleared_at or (principal is not None and max(
                self._dropped_at.get(i, -1) for i in _index_ids(principal)) > generation):
            return
        self._store(key_hash, principal, time.monotonic())

    def _store(self, key_hash: bytes, principal: Principal | None, now: float) -> None:
        ttl = self._ttl if principal is not None else NEGATIVE_TTL
        self._entries[key_hash] = (now + ttl, principal)
        self._entries.move_to_end(key_hash)
        if principal is not None:
            for index_id in _index_ids(principal):
                self._by_user.setdefault(index_id, set()).add(key_hash)
        while len(self._entries) > self._max:
            old_hash, (_, old) = self._entries.popitem(last=False)
            if old is not None:
                for index_id in _index_ids(old):
                    self._forget_index(index_id, old_hash)

    def _forget_index(self, user_id: uuid.UUID, key_hash: bytes) -> None:
        hashes = self._by_user.get(user_id)
        if hashes is not None:
            hashes.discard(key_hash)
            if not hashes:
                del self._by_user[user_id]

    async def _load(self, key_hash: bytes) -> Principal | None:
        async with self._pool.acquire() as conn:
            # A team key takes the team's plan and limit overrides (the organisation's own: sql/0017) and its
            # holder's monthly limits in the team, and works only while its holder is a member.
            row = await conn.fetchrow(
                """SELECT k.id AS key_id, k.prefix, k.org_id, u.id AS user_id, u.status,
                          coalesce(o.plan, u.plan) AS plan,
                          CASE WHEN k.org_id IS NULL THEN u.burst_per_minute_override
                               ELSE o.burst_per_minute_override END AS burst_per_minute_override,
                          CASE WHEN k.org_id IS NULL THEN u.monthly_requests_override
                               ELSE o.monthly_requests_override END AS monthly_requests_override,
                          k.expires_at, k.allowed_models, k.allowed_providers, k.rpm_limit, k.spend_cap_idr,
                          u.spend_cap_idr AS user_cap_idr, u.spend_cap_hard,
                          m.monthly_request_limit AS member_requests, m.monthly_spend_limit_idr AS member_cap_idr
                   FROM proxy_api_keys k JOIN users u ON u.id = k.user_id
                   LEFT JOIN organisations o ON o.id = k.org_id
                   LEFT JOIN org_members m ON m.org_id = k.org_id AND m.user_id = k.user_id
                   WHERE k.key_hash = $1 AND k.revoked_at IS NULL AND (k.org_id IS NULL OR m.id IS NOT NULL)""",
                key_hash)
            if row is None:
                return None
            key_rows = await conn.fetch(
                """SELECT id, user_id, org_id, provider, ciphertext, nonce, key_version FROM api_keys
                   WHERE org_id IS NOT DISTINCT FROM $2 AND ($2::uuid IS NOT NULL OR user_id = $1)
                   ORDER BY created_at, id""", row["user_id"], row["org_id"])
            alias_rows = await conn.fetch(
                "SELECT name, hops FROM model_aliases WHERE user_id = $1", row["user_id"])
        plan = get_plan(row["plan"])
        by_provider: dict[str, list[ProviderKey]] = {}
        for kr in key_rows:
            try:
                plaintext = self._keyring.open(Sealed(kr["ciphertext"], kr["nonce"], kr["key_version"]),
                                               kr["user_id"], kr["id"], kr["org_id"])
            except DecryptionFailed as exc:
                log.error("provider key unreadable; skipped", extra={"key_id": str(kr["id"]), "reason": str(exc)})
                continue
            by_provider.setdefault(kr["provider"], []).append(ProviderKey(kr["id"], plaintext))
        # Plain uuid.UUIDs (asyncpg's own type is a subclass, equal and hashing alike): orjson writes them
        # itself, not through a Python callback, when every call's usage row is journaled.
        user_id, org_id, key_id = _plain(row["user_id"]), _plain_or_none(row["org_id"]), _plain(row["key_id"])
        workspace_id = org_id if org_id is not None else user_id
        return Principal(
            user_id=user_id, user_id_str=str(user_id), workspace_id=workspace_id,
            workspace_id_str=str(workspace_id), org_id=org_id,
            proxy_key_id=key_id,
            key_prefix=row["prefix"], plan=plan.id, active=row["status"] == "active",
            burst_per_minute=row["burst_per_minute_override"] or plan.burst_per_minute,
            monthly_requests=(row["monthly_requests_override"] if row["monthly_requests_override"] is not None
                              else plan.monthly_requests),
            provider_keys={p: tuple(ks) for p, ks in by_provider.items()},
            rules=KeyRules.build(expires_at=row["expires_at"], models=row["allowed_models"],
                                 providers=row["allowed_providers"], rpm=row["rpm_limit"],
                                 key_cap_idr=row["spend_cap_idr"],
                                 # A member's own account cap governs their personal calls, not the team's.
                                 user_cap_idr=None if org_id is not None else row["user_cap_idr"],
                                 user_cap_hard=row["spend_cap_hard"], member_requests=row["member_requests"],
                                 member_cap_idr=row["member_cap_idr"]),
            aliases=_aliases(alias_rows))

    def drop_user(self, user_id: uuid.UUID) -> None:
        """Drop the entries of a user or of a workspace (a team's id)."""
        self._generation += 1
        if len(self._dropped_at) >= MAX_TRACKED_INVALIDATIONS:  # bounded: forget them all, conservatively
            self._dropped_at.clear()
            self._cleared_at = self._generation
        self._dropped_at[user_id] = self._generation
        for key_hash in self._by_user.pop(user_id, set()):
            self._entries.pop(key_hash, None)
        # Negative entries are not indexed by user; a newly created key is never among them (keys are random).

    def on_signal(self, name: str, callback: Callable[[], None]) -> None:
        """Call ``callback`` (sync, cheap: schedule work, don't do it) when any replica publishes ``name``, and
        after the listener reconnects (a signal may have been missed)."""
        self._signals[(SIGNAL_PREFIX + name).encode()] = callback

    async def publish_signal(self, name: str) -> None:
        """Run ``name``'s callback here at once, and tell every replica."""
        key = (SIGNAL_PREFIX + name).encode()
        callback = self._signals.get(key)
        if callback is not None:
            callback()
        try:
            await self._redis.publish(CHANNEL, key)
        except (RedisError, OSError):
            log.warning("could not publish a cache signal; other replicas catch up when they reconnect",
                        extra={"signal": name})

    def clear(self) -> None:
        self._generation += 1
        self._cleared_at = self._generation
        self._dropped_at.clear()
        self._entries.clear()
        self._by_user.clear()

    async def invalidate_user(self, user_id: uuid.UUID) -> None:
        """Drop locally at once, and tell every replica."""
        self.drop_user(user_id)
        try:
            await self._redis.publish(CHANNEL, str(user_id))
        except (RedisError, OSError):
            log.warning("could not publish key-cache invalidation; other replicas expire it by TTL",
                        extra={"user_id": str(user_id)})

    async def listen(self, ready: asyncio.Event | None = None) -> None:
        """Apply invalidations from other replicas until cancelled."""
        first = True
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    if not first:
                        self.clear()  # we may have missed messages while disconnected
                        for callback in self._signals.values():
                            callback()
                    first = False
                    if ready is not None:
                        ready.set()
                    async for message in pubsub.listen():
                        data = message.get("data")
                        if isinstance(data, bytes) and data in self._signals:
                            self._signals[data]()
                        elif isinstance(data, bytes):
                            with contextlib.suppress(ValueError):
                                self.drop_user(uuid.UUID(data.decode()))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("key-cache invalidation channel lost; retrying", extra={"error": str(exc)})
                await asyncio.sleep(RECONNECT_DELAY)


def _aliases(rows: list[asyncpg.Record]) -> dict[str, Alias]:
    out: dict[str, Alias] = {}
    for r in rows:
        alias = from_row(r["name"], r["hops"])
        if alias is None:
            log.error("stored alias unreadable; skipped", extra={"alias": r["name"]})
            continue
        out[alias.name] = alias
    return out


@contextlib.asynccontextmanager
async def running_listener(cache: KeyCache) -> AsyncIterator[None]:
    ready = asyncio.Event()
    async with background(cache.listen(ready), "keycache-listener"):
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(ready.wait(), timeout=5)
        yield


def _plain(value: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(int=value.int)


def _plain_or_none(value: uuid.UUID | None) -> uuid.UUID | None:
    return None if value is None else _plain(value)
