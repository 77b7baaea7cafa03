"""Signed-in API calls for one browser request: the session's token, refreshed transparently.

The API rotates refresh tokens and treats a reused one as theft (it revokes the whole sign-in). Two requests
of one browser arriving together with an expired access token must therefore not both refresh: the
``Refresher`` (one per console process, on the app) lets the first refresh and hands its answer to the others.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import TYPE_CHECKING

from webrana_dashboard.client import Anonymous, ApiError, Json
from webrana_dashboard.session import Session

if TYPE_CHECKING:
    from webrana_dashboard.client import ApiClient

REFRESH_MARGIN_SECONDS = 60.0  # refresh a little before the access token expires, not after a failed call
SHARED_ANSWER_SECONDS = 30.0  # how long a refresh answer is handed to late requests with the old token


class Refresher:
    """Deduplicates concurrent refreshes of the same refresh token within this process."""

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._answers: dict[str, tuple[float, Json]] = {}

    def _prune(self, now: float) -> None:
        for key in [k for k, (at, _) in self._answers.items() if at < now - SHARED_ANSWER_SECONDS]:
            del self._answers[key]
        for key in [k for k, lock in self._locks.items() if not lock.locked() and k not in self._answers]:
            del self._locks[key]  # failed refreshes leave no answer; their idle locks go too

    async def refresh(self, client: ApiClient, forwarded_for: str, refresh_token: str) -> Json:
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        now = time.monotonic()
        self._prune(now)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            shared = self._answers.get(key)
            if shared is not None:
                return shared[1]
            answer = await client.refresh_tokens(Anonymous(forwarded_for), refresh_token)
            self._answers[key] = (time.monotonic(), answer)
            return answer


class BrowserCredentials:
    """``client.Credentials`` backed by the browser's encrypted session cookie."""

    def __init__(self, client: ApiClient, refresher: Refresher, session: Session, forwarded_for: str) -> None:
        self._client = client
        self._refresher = refresher
        self.session = session
        self._forwarded_for = forwarded_for
        self.alerts: list[Json] = []  # the user's undismissed alerts, as the last signed-in answer carried them

    def saw_alerts(self, alerts: list[Json]) -> None:
        self.alerts = alerts

    @property
    def forwarded_for(self) -> str:
        return self._forwarded_for

    async def access_token(self) -> str | None:
        s = self.session
        if s.access_token and s.refresh_token and s.access_expires_at - REFRESH_MARGIN_SECONDS < time.time():
            await self.refresh()
        return self.session.access_token

    async def refresh(self) -> bool:
        s = self.session
        if not s.refresh_token:
            return False
        try:
            tokens = await self._refresher.refresh(self._client, self._forwarded_for, s.refresh_token)
        except ApiError as err:
            if err.status in (400, 401, 403):
                s.sign_out()  # the sign-in is over (expired, revoked or suspended): back to the sign-in page
                return False
            raise
        s.update_tokens(tokens)
        return True
