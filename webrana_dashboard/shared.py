"""Answers of the API that are the same for every visitor (the plans, the deployment's facts), kept by this
console process for a while instead of being asked again on every page.

Each page costs its visitor's address calls against the proxy's per-address limit (100 a minute by default);
what is the same for everyone should not add to that on every page. One ``SharedAnswers`` lives on the app.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from webrana_dashboard.client import ApiClient, ApiError, Credentials, Json

log = logging.getLogger("webrana.dashboard")

PLANS_SECONDS = 300.0  # what /api/plans allows (Cache-Control: max-age=300); plans change with a deploy
META_SECONDS = 60.0  # /api/meta's max-age; the demo flag changes only when the proxy restarts
META_RETRY_SECONDS = 10.0  # after a failed meta call, pages use what was known before for this long


class SharedAnswer:
    """One answer shared for ``ttl`` seconds. When it is stale, one request fetches it again while the others
    keep using the stale answer (or wait, the first time, when there is none)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._value: Json | None = None
        self._until = 0.0
        self._lock = asyncio.Lock()

    @property
    def known(self) -> Json | None:
        return self._value

    def put(self, value: Json, ttl: float | None = None) -> None:
        self._value = value
        self._until = time.monotonic() + (self.ttl if ttl is None else ttl)

    def hold(self, seconds: float) -> None:
        """Keep using what is known (possibly nothing) for ``seconds`` before asking again."""
        self._until = time.monotonic() + seconds

    async def get(self, fetch: Callable[[], Awaitable[Json]]) -> Json | None:
        """The answer; ``fetch`` runs when it is stale. A failing fetch raises to the request that ran it."""
        if time.monotonic() < self._until:
            return self._value
        if self._lock.locked() and self._value is not None:
            return self._value  # someone is already asking; the answer a minute old is still good
        async with self._lock:
            if time.monotonic() < self._until:
                return self._value
            self.put(await fetch())
            return self._value


class SharedAnswers:
    """The plans and the deployment's facts (``/api/meta``: is this a demo with fake providers? which providers
    does it route to?)."""

    def __init__(self) -> None:
        self._plans = SharedAnswer(PLANS_SECONDS)
        self._meta = SharedAnswer(META_SECONDS)

    async def plans(self, client: ApiClient, creds: Credentials) -> Json:
        answer = await self._plans.get(lambda: client.plans(creds))
        assert answer is not None  # get() either returns a fetched answer or raises
        return answer

    async def facts(self, client: ApiClient, creds: Credentials) -> Json:
        """The deployment's facts (``/api/meta``: ``demo``, ``mail``...). Never fails a page: when the API cannot
        say, the last answer it gave stands (none yet: ``{}``, no banner) and it is asked again a little later."""
        try:
            meta = await self._meta.get(lambda: client.meta(creds))
        except ApiError as err:
            log.warning("could not read /api/meta: %s", err)
            self._meta.hold(META_RETRY_SECONDS)
            meta = self._meta.known
        return meta or {}

    async def demo(self, client: ApiClient, creds: Credentials) -> bool:
        """Whether the proxy answers with local fake providers."""
        return bool((await self.facts(client, creds)).get("demo"))

    async def providers(self, client: ApiClient, creds: Credentials) -> list[Json]:
        """The providers the proxy routes to (``[{"id", "name"}]``, from its registry). Never fails a page: when
        the API cannot say, the last answer stands (none yet: an empty list)."""
        meta = self._meta.known
        if meta is None or "providers" not in meta:  # never asked, or only the demo flag is known
            try:
                meta = await client.meta(creds)
                self._meta.put(meta)
            except ApiError as err:
                log.warning("could not read /api/meta: %s", err)
                self._meta.hold(META_RETRY_SECONDS)
                meta = self._meta.known
        found = meta.get("providers") if meta else None
        return [p for p in found if isinstance(p, dict)] if isinstance(found, list) else []

    def saw_demo(self, demo: bool) -> None:
        """An answer that carries the demo flag (the overview) saves the next meta call, once the other facts
        are known too."""
        if self._meta.known is not None:
            self._meta.put({**self._meta.known, "demo": demo})
