"""Numbers, money and dates the Indonesian way: ``Rp 49.000``, ``1.234``, ``12 Mar 2025 14:05 WIB``.

Pure functions. Money is integer rupiah, or integer micro-rupiah for usage costs (``rupiah_micro``: a call
costs fractions of a rupiah and is shown with enough decimals, never as ``Rp 0``). Times are shown in
Asia/Jakarta (UTC+7, no daylight saving), whatever zone the API wrote them in.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta, timezone

JAKARTA = timezone(timedelta(hours=7), "WIB")


def number(value: int | float | None) -> str:
    """``1234567`` -> ``1.234.567`` (dot as thousands separator, as written in Indonesia)."""
    if value is None:
        return "-"
    if isinstance(value, float) and not value.is_integer():
        return decimal(value, 1)
    return f"{int(value):,}".replace(",", ".")


def decimal(value: float | None, digits: int = 1) -> str:
    """``1234.5`` -> ``1.234,5`` (comma as decimal separator)."""
    if value is None:
        return "-"
    text = f"{value:,.{digits}f}"
    return text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")


def rupiah(value: int | None) -> str:
    """``49000`` -> ``Rp 49.000``; ``-500`` -> ``-Rp 500``."""
    if value is None:
        return "-"
    sign = "-" if value < 0 else ""
    return f"{sign}Rp {number(abs(int(value)))}"


MICRO = 1_000_000


def rupiah_micro(micro: int | None) -> str:
    """Micro-rupiah for people: ``83_100`` -> ``Rp 0,0831``; ``12_345_678`` -> ``Rp 12,35``; from Rp 1.000 whole
    rupiah. Rounded half up for display only; a non-zero amount never shows as ``Rp 0``."""
    if micro is None:
        return "-"
    sign = "-" if micro < 0 else ""
    m = abs(int(micro))
    if m == 0:
        return "Rp 0"
    if m >= 1_000 * MICRO:
        digits = 0
    elif m >= MICRO:
        digits = 2
    else:
        digits = 4
        if m < 50:  # below Rp 0,0001: show it to the micro-rupiah rather than as 0
            digits = 6
    step = 10 ** (6 - digits)
    shown = (m + step // 2) // step
    whole, frac = divmod(shown, 10**digits)
    text = number(whole) + (f",{frac:0{digits}d}" if digits else "")
    return f"{sign}Rp {text}"


def percent(part: int, whole: int) -> int:
    """Whole percent of ``part`` in ``whole`` (0 when there is no whole), capped at 100 for bars."""
    if whole <= 0:
        return 0
    return min(100, (part * 100) // whole)


def to_jakarta(value: str | datetime) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(JAKARTA)


def format_datetime(value: str | datetime | None, months: Sequence[str]) -> str:
    """``2025-03-12T07:05:00Z`` -> ``12 Mar 2025 14:05 WIB``."""
    if value is None or value == "":
        return "-"
    m = to_jakarta(value)
    return f"{m.day} {months[m.month - 1]} {m.year} {m.hour:02d}:{m.minute:02d} WIB"


def format_period(period: str, months: Sequence[str]) -> str:
    """A Jakarta month ``2025-06`` -> ``Jun 2025``; anything else as it is."""
    year, _, month = period.partition("-")
    if not (year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        return period
    return f"{months[int(month) - 1]} {year}"


def format_date(value: str | date | datetime | None, months: Sequence[str]) -> str:
    """A day: ``2025-03-12`` -> ``12 Mar 2025``; instants are converted to Jakarta first."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime) or (isinstance(value, str) and "T" in value):
        day: date = to_jakarta(value).date()
    elif isinstance(value, str):
        day = date.fromisoformat(value)
    else:
        day = value
    return f"{day.day} {months[day.month - 1]} {day.year}"


def short_day(value: str | date, months: Sequence[str]) -> str:
    """``2025-03-12`` -> ``12 Mar`` (chart axis labels)."""
    day = date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.day} {months[day.month - 1]}"


def jakarta_today(now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(JAKARTA).date()
