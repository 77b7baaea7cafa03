"""The plans, in one place. Prices are integer rupiah per 30-day period, before PPN."""

from __future__ import annotations

from dataclasses import dataclass

PERIOD_DAYS = 30  # every plan is billed per 30 days
BURST_PER_MINUTE = 60  # requests/minute per user on every plan


@dataclass(frozen=True, slots=True)
class Plan:
    id: str
    name: str
    price_idr: int
    monthly_requests: int
    max_proxy_keys: int | None  # None = unlimited
    max_providers: int | None  # None = all providers
    team_seats: int
    burst_per_minute: int = BURST_PER_MINUTE

    def public(self) -> dict[str, object]:
        return {
            "id": self.id,
            "name": self.name,
            "price_idr": self.price_idr,
            "period_days": PERIOD_DAYS,
            "monthly_requests": self.monthly_requests,
            "max_proxy_keys": self.max_proxy_keys,
            "max_providers": self.max_providers,
            "team_seats": self.team_seats,
            "burst_per_minute": self.burst_per_minute,
        }


PLANS: tuple[Plan, ...] = (
    Plan("free", "Free", 0, 1_000, 1, 1, 1),
    Plan("starter", "Starter", 49_000, 10_000, 5, 2, 1),
    Plan("pro", "Pro", 99_000, 50_000, None, None, 1),
    Plan("team", "Team", 299_000, 200_000, None, None, 10),
)
PLAN_IDS: tuple[str, ...] = tuple(p.id for p in PLANS)


def get_plan(plan_id: str) -> Plan:
    for plan in PLANS:
        if plan.id == plan_id:
            return plan
    raise KeyError(plan_id)


def cheapest_plan_with(predicate: str, needed: int) -> Plan | None:
    """The cheapest plan whose ``predicate`` limit (max_proxy_keys / max_providers) allows ``needed``."""
    for plan in PLANS:
        limit = getattr(plan, predicate)
        if limit is None or limit >= needed:
            return plan
    return None
