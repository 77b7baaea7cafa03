"""`make prices`: regenerate the vendored price data from pydantic's `genai-prices` and report staleness.

Run with the `genai-prices` package installed (`make prices` installs it into the venv first; it is never a
runtime dependency: it brings its own HTTP client and an auto-updater). Writes
`webrana_proxy/providers/pricedata/genai_prices.json`: for the providers Webrana serves, every model's match rule,
context window and the token prices Webrana meters (input, cache read, cache write 5 min / 1 h, output), with
their start dates and the `service_tier` / batch variants, plus the source, its version and the date.

Then prints what needs a person: data older than STALE_DAYS, listed models past their `retires_on`, overrides past
theirs. Exit status is 0 either way: staleness is news, not a build failure.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = ROOT / "webrana_proxy" / "providers" / "pricedata"
OUT = DATA_DIR / "genai_prices.json"
OVERRIDES = DATA_DIR / "overrides.json"
STALE_DAYS = 45  # the source is re-checked against the providers' pages about monthly; 45 days = one missed run
# genai-prices provider id -> Webrana provider id (Qwen/DashScope is not in the source: see overrides.json).
# OpenRouter reports each call's cost itself (preferred when present); its prices here are the fallback.
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "google": "google", "deepseek": "deepseek",
             "openrouter": "openrouter", "mistral": "mistral", "groq": "groq", "x-ai": "xai"}
# genai-prices price keys Webrana meters -> the names in our file. Audio, image and search units are not metered.
RATE_KEYS = {"input_mtok": "input", "cache_read_mtok": "cache_read", "cache_write_mtok": "cache_write",
             "cache_write_1h_mtok": "cache_write_1h", "output_mtok": "output"}
# Models the source lists under a provider that another Webrana provider serves (Vertex's Claude under google).
FOREIGN_PREFIXES = {"google": ("claude-",)}
REPEATING_DECIMALS = 12  # a price with more decimals than this is a fraction such as 1/12 written out


def _clause(match: Any) -> dict[str, Any]:
    from genai_prices import types as t

    if isinstance(match, t.ClauseEquals):
        return {"equals": match.equals}
    if isinstance(match, t.ClauseStartsWith):
        return {"starts_with": match.starts_with}
    if isinstance(match, t.ClauseEndsWith):
        return {"ends_with": match.ends_with}
    if isinstance(match, t.ClauseContains):
        return {"contains": match.contains}
    if isinstance(match, t.ClauseRegex):
        return {"regex": match.regex}
    if isinstance(match, t.ClauseOr):
        return {"or": [_clause(c) for c in match.or_]}
    if isinstance(match, t.ClauseAnd):
        return {"and": [_clause(c) for c in match.and_]}
    raise TypeError(f"unknown match clause {match!r}")


def _num(value: Decimal) -> str:
    """A price as a decimal string of whole micro-USD per million tokens (what the catalogue counts in). A
    finer price (OpenRouter passes on some vendors' per-token prices such as 1/12 USD) is rounded up to the
    next micro-USD, so it is never under-charged; the error stays for anything far finer (a unit mistake)."""
    micro = value * 1_000_000
    if micro != micro.to_integral_value():
        exponent = value.normalize().as_tuple().exponent
        if not isinstance(exponent, int) or exponent >= -REPEATING_DECIMALS:
            raise ValueError(f"price {value} is finer than 1e-6 USD per million tokens; widen the unit")
        value = micro.to_integral_value(rounding="ROUND_CEILING") / 1_000_000
    return format(value.normalize(), "f")


def _rate(value: Any) -> Any:
    from genai_prices import types as t

    if isinstance(value, t.TieredPrices):
        return {"base": _num(value.base), "tiers": [[tier.start, _num(tier.price)] for tier in value.tiers]}
    return _num(value)


def _rates(price: Any) -> dict[str, Any]:
    return {ours: _rate(getattr(price, key)) for key, ours in RATE_KEYS.items()
            if getattr(price, key, None) is not None}


def _start(constraint: Any) -> str | None:
    if constraint is None:
        return None
    start = getattr(constraint, "start_date", None)
    if start is None:
        raise ValueError(f"time-of-day prices are not supported: {constraint!r}")
    return str(start.isoformat())


def _peak(rates: dict[str, Any], peaks: list[dict[str, Any]]) -> dict[str, Any]:
    """``rates`` with each flat price raised to the highest of the time-of-day prices (never under-charged)."""
    out = dict(rates)
    for peak in peaks:
        for name, value in peak["rates"].items():
            if isinstance(value, str) and (name not in out or isinstance(out[name], str)):
                out[name] = _num(max(Decimal(value), Decimal(out.get(name, "0"))))
    return out


def _model(m: Any) -> dict[str, Any]:
    from genai_prices import types as t

    peaks: list[dict[str, Any]] = []
    if isinstance(m.prices, t.ModelPrice):
        periods = [{"from": None, "rates": _rates(m.prices)}]
    else:
        periods = []
        for c in m.prices:
            if isinstance(c.constraint, t.TimeOfDateConstraint):  # DeepSeek's peak hours (UTC)
                peaks.append({"start": c.constraint.start_time.strftime("%H:%M"),
                              "end": c.constraint.end_time.strftime("%H:%M"), "rates": _rates(c.prices)})
            else:
                periods.append({"from": _start(c.constraint), "rates": _rates(c.prices)})
    if peaks:
        # The catalogue prices by day, not by hour: the current period pays the peak price at every hour, so
        # a call is never under-charged; the hours are kept for the record ("time_of_day").
        periods.sort(key=lambda p: p["from"] or "")
        periods[-1] = {**periods[-1], "rates": _peak(periods[-1]["rates"], peaks)}
    out: dict[str, Any] = {"id": m.id, "match": _clause(m.match), "context_window": m.context_window,
                           "prices": periods}
    if peaks:
        out["time_of_day"] = peaks
    if m.deprecated:
        out["deprecated"] = True
    variants = []
    for v in m.price_variants or ():
        when = dict(v.when)
        if set(when) - {"service_tier", "processing"}:
            continue  # e.g. Anthropic's {"speed": "fast"}: not something our calls select
        rates = _rates(v.prices)
        variants.append({"when": when, "from": _start(v.constraint), "rates": rates})
    if variants:
        out["variants"] = variants
    return out


def generate(today: dt.date) -> dict[str, Any]:
    from genai_prices import data

    providers: dict[str, Any] = {}
    for p in data.providers:
        ours = PROVIDERS.get(p.id)
        if ours is None:
            continue
        skip = FOREIGN_PREFIXES.get(p.id, ())
        providers[ours] = {
            "pricing_urls": list(p.pricing_urls or ()),
            "models": [_model(m) for m in p.models if not m.id.startswith(skip)],
        }
    return {
        "source": "genai-prices",
        "source_url": "https://github.com/pydantic/genai-prices",
        "source_version": version("genai-prices"),
        "generated_on": today.isoformat(),
        "units": "USD per million tokens, as decimal strings; 'from' is the first UTC day a price applies",
        "providers": dict(sorted(providers.items())),
    }


def staleness(generated: dict[str, Any], overrides: dict[str, Any], today: dt.date) -> list[str]:
    """What a person should look at: old data, listed models past their shutdown, overrides past theirs."""
    news = []
    age = (today - dt.date.fromisoformat(generated["generated_on"])).days
    if age > STALE_DAYS:
        news.append(f"price data is {age} days old (generated {generated['generated_on']}): run `make prices`")
    retires = {(o["provider"], o["id"]): o["retires_on"] for o in overrides.get("models", ()) if o.get("retires_on")}
    for provider, spec in overrides.get("providers", {}).items():
        for model in spec.get("listed", ()):
            day = retires.get((provider, model))
            if day and dt.date.fromisoformat(day) <= today:
                news.append(f"{provider}/{model} is listed but retired on {day}: drop it from 'listed'")
    return news


def main(argv: list[str]) -> int:
    today = dt.date.today()
    check_only = "--check" in argv
    if not check_only:
        generated = generate(today)
        OUT.write_text(json.dumps(generated, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        counts = ", ".join(f"{k}: {len(v['models'])}" for k, v in generated["providers"].items())
        print(f"wrote {OUT.relative_to(ROOT)} from genai-prices {generated['source_version']} ({counts})")
    generated = json.loads(OUT.read_text(encoding="utf-8"))
    overrides = json.loads(OVERRIDES.read_text(encoding="utf-8"))
    news = staleness(generated, overrides, today)
    for line in news:
        print("STALE:", line)
    if not news:
        print("prices are current: no stale data, no listed model past its retires_on")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
