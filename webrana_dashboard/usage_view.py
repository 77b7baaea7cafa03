"""Turning the usage API's documents into what pages show: ranges, month totals, chart bars."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from webrana_dashboard import formatting
from webrana_dashboard.charts import Bar
from webrana_dashboard.i18n import Translator

PRESETS = (7, 30, 90)  # days offered on the usage page
DEFAULT_PRESET = 30


@dataclass(frozen=True, slots=True)
class DayRange:
    first: date
    last: date
    preset: int | None  # None = a custom range

    @property
    def query(self) -> dict[str, str]:
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def preset_range(days: int, today: date) -> DayRange:
    return DayRange(today - timedelta(days=days - 1), today, days)


def parse_day(value: str) -> date | None:
    try:
        return date.fromisoformat(value) if len(value) == 10 else None
    except ValueError:
        return None


def choose_range(query: Mapping[str, str], today: date) -> tuple[DayRange, dict[str, str]]:
    """The range a usage page asks for (``range=7|30|90`` or ``range=custom&from=&to=``), and field errors."""
    choice = query.get("range", "")
    if choice != "custom":
        days = int(choice) if choice.isdigit() and int(choice) in PRESETS else DEFAULT_PRESET
        return preset_range(days, today), {}
    errors: dict[str, str] = {}
    first, last = parse_day(query.get("from", "")), parse_day(query.get("to", ""))
    if first is None:
        errors["from"] = "error.invalid_date"
    if last is None:
        errors["to"] = "error.invalid_date"
    if first and last and first > last:
        errors["from"] = "error.invalid_range"
    if errors or first is None or last is None:
        return preset_range(DEFAULT_PRESET, today), errors
    return DayRange(first, last, None), {}


def day_bars(by_day: Sequence[Mapping[str, Any]], metric: str, t: Translator, unit_key: str) -> list[Bar]:
    months = t.month_names()
    bars = []
    for entry in by_day:
        value = int(entry.get(metric, 0))
        shown = formatting.rupiah_micro(value) if metric == "cost_idr_micro" else formatting.number(value)
        unit = "" if metric == "cost_idr_micro" else " " + t(unit_key)
        bars.append(Bar(formatting.short_day(entry["date"], months), value,
                        f"{formatting.format_date(entry['date'], months)}: {shown}{unit}"))
    return bars
