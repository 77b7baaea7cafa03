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
# genai-prices provider id -> Webrana provider id (Qwen/DashScope is not in the source: see overrides.json)
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "google": "google"}
# genai-prices price keys Webrana meters -> the names in our file. Audio, image and search units are not metered.
RATE_KEYS = {"input_mtok": "input", "cache_read_mtok": "cache_read", "cache_write_mtok": "cache_write",
             "cache_write_1h_mtok": "cache_write_1h", "output_mtok": "output"}
# Models the source lists under a provider that another Webrana provider serves (Vertex's Claude under google).
FOREIGN_PREFIXES = {"google": ("claude-",)}


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
    if (value * 1_000_000) != (value * 1_000_000).to_integral_value():
        raise ValueError(f"price {value} is finer than 1e-6 USD per million tokens; widen the unit")
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


def _model(m: Any) -> dict[str, Any]:
    from genai_prices import types as t

    if isinstance(m.prices, t.ModelPrice):
        periods = [{"from": None, "rates": _rates(m.prices)}]
    else:
        periods = [{"from": _start(c.constraint), "rates": _rates(c.prices)} for c in m.prices]
    out: dict[str, Any] = {"id": m.id, "match": _clause(m.match), "context_window": m.context_window,
                           "prices": periods}
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
