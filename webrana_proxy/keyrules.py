"""A proxy key's rules (issue 14) as the hot path reads them: built once when the key is loaded into the key cache,
so a call only compares numbers and looks up a set (the model globs are one regular expression compiled here,
never per call).

* ``expires_at``: after it the key is refused like a revoked one (401).
* ``models`` / ``providers``: allow-lists. A call is allowed when neither is set, or when it matches either
  (a key for "any Anthropic model, plus gpt-4o-mini" is ``providers=[anthropic], models=[gpt-4o-mini]``). Model
  patterns are exact ids or globs (``*`` any run of characters, ``?`` one), matched against the model id and its
  ``provider/model`` form, case-sensitively.
* ``rpm``, ``key_cap_micro``, ``user_cap_micro``: counted in Redis in the gateway's one Lua call
  (``limits.Limiter.check_ruled``); ``user_cap_micro`` is the account's cap when it is hard (a soft cap only
  alerts). Caps are held in micro-rupiah, the unit of the spend counters.
* ``member_requests``, ``member_cap_micro``: on a team key, its holder's monthly request and spend limits in the
  team (``org_members``, set by the owner or a manager), counted in the same Lua call. A personal key never has
  them, so they cost personal keys nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

MICRO_PER_IDR = 1_000_000
MODEL_PATTERN_RE = re.compile(r"^[A-Za-z0-9._:@/*?\-]{1,100}$")  # model ids plus the glob characters
MAX_MODELS = 50  # patterns per key (the SQL CHECK says the same)
MAX_PROVIDERS = 20
NOTE_MAX = 500
MAX_CAP_IDR = 10**12  # a trillion rupiah: far above any real cap, far below integer trouble in micro-rupiah
MAX_RPM = 1_000_000


def glob_regex(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One anchored expression matching any of the glob ``patterns`` (``*`` and ``?`` only), or None."""
    parts = []
    for p in patterns:
        if "*" in p or "?" in p:
            parts.append("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in p))
    return re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL) if parts else None


@dataclass(frozen=True, slots=True)
class KeyRules:
    expires_at: float | None = None  # seconds since the epoch
    models: tuple[str, ...] = ()
    providers: frozenset[str] = frozenset()
    rpm: int | None = None
    key_cap_micro: int | None = None
    user_cap_micro: int | None = None  # the account's hard cap
    user_soft_cap_micro: int | None = None  # the account's soft cap: counted for alerts, never refuses
    member_requests: int | None = None  # a team member's monthly request limit in the team
    member_cap_micro: int | None = None  # a team member's monthly spend limit in the team
    exact: frozenset[str] = frozenset()
    globs: re.Pattern[str] | None = None

    @classmethod
    def build(cls, *, expires_at: datetime | None, models: Iterable[str] | None, providers: Iterable[str] | None,
              rpm: int | None, key_cap_idr: int | None, user_cap_idr: int | None,
              user_cap_hard: bool, member_requests: int | None = None,
              member_cap_idr: int | None = None) -> KeyRules | None:
        """The rules of one key, or None when it has none (the hot path then skips every check here)."""
        pats = tuple(models or ())
        rules = cls(
            expires_at=expires_at.timestamp() if expires_at is not None else None, models=pats,
            providers=frozenset(providers or ()), rpm=rpm,
            key_cap_micro=key_cap_idr * MICRO_PER_IDR if key_cap_idr else None,
            user_cap_micro=user_cap_idr * MICRO_PER_IDR if user_cap_idr and user_cap_hard else None,
            user_soft_cap_micro=user_cap_idr * MICRO_PER_IDR if user_cap_idr and not user_cap_hard else None,
            member_requests=member_requests or None,
            member_cap_micro=member_cap_idr * MICRO_PER_IDR if member_cap_idr else None,
            exact=frozenset(p for p in pats if "*" not in p and "?" not in p), globs=glob_regex(pats))
        return None if rules == EMPTY else rules

    @property
    def counted(self) -> bool:
        """Whether a call needs the ruled limiter script (a per-key rate, a cap or a member's limit to check)."""
        return (self.rpm is not None or self.key_cap_micro is not None or self.user_cap_micro is not None
                or self.member_requests is not None or self.member_cap_micro is not None)

    @property
    def tracks_spend(self) -> bool:
        """Whether this key's calls add to spend counters (a cap on the key or on its account, hard or soft, or
        its holder's spend limit in the team)."""
        return (self.key_cap_micro is not None or self.user_cap_micro is not None
                or self.user_soft_cap_micro is not None or self.member_cap_micro is not None)

    @property
    def user_cap(self) -> int | None:
        return self.user_cap_micro if self.user_cap_micro is not None else self.user_soft_cap_micro

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def refusal(self, provider: str, model: str) -> str | None:
        """None when the key may call ``model`` on ``provider``; else the sentence naming the key's rule."""
        if not self.models and not self.providers:
            return None
        if provider in self.providers or model in self.exact:
            return None
        qualified = f"{provider}/{model}"
        if qualified in self.exact or (self.globs is not None and (self.globs.match(model)
                                                                   or self.globs.match(qualified))):
            return None
        allowed = [*self.models, *(f"any {p} model" for p in sorted(self.providers))]
        return (f"this API key may not use model '{model}' ({provider}): its rule allows only "
                f"{', '.join(allowed)}; change the key's allowed models in the console")


EMPTY = KeyRules()
