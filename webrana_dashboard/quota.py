"""The quota progress bar: an SVG (sized by attributes, so the CSP needs no inline styles) that turns to a
warning at 80% of the plan's monthly requests."""

from __future__ import annotations

from markupsafe import Markup, escape

from webrana_dashboard import formatting
from webrana_dashboard.i18n import Translator

WARN_PERCENT = 80  # product rule: warn when four fifths of the month's quota are used
BAR_WIDTH = 400


def quota_bar(used: int, quota: int, t: Translator) -> Markup:
    pct = formatting.percent(used, quota)
    state = quota_state(used, quota)
    label = t("overview.quota_label", used=formatting.number(used), quota=formatting.number(quota), pct=pct)
    fill = BAR_WIDTH * pct // 100
    return Markup(  # noqa: S704 - the only text is escaped
        f'<svg class="quota quota-{state}" viewBox="0 0 {BAR_WIDTH} 14" preserveAspectRatio="none" role="progressbar" '
        f'aria-valuemin="0" aria-valuemax="100" aria-valuenow="{pct}" aria-label="{escape(label)}" '
        f'data-percent="{pct}"><title>{escape(label)}</title>'
        f'<rect class="quota-track" x="0" y="0" width="{BAR_WIDTH}" height="14" rx="7"/>'
        f'<rect class="quota-fill" x="0" y="0" width="{fill}" height="14" rx="7"/></svg>')


def quota_state(used: int, quota: int) -> str:
    pct = formatting.percent(used, quota)
    return "full" if quota and used >= quota else "warn" if pct >= WARN_PERCENT else "ok"
