"""What a call costs: golden tests per provider from recorded usage blocks, the expected cost worked out by hand
from the provider's list prices; the catalogue is the generated data plus the reviewed overrides; unknown models
are charged at the provider's dearest current general model and say so."""

from __future__ import annotations

import importlib.util
from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from webrana_proxy.providers.anthropic_native import NativeMessagesStream
from webrana_proxy.providers.anthropic_response import AnthropicStream
from webrana_proxy.providers.anthropic_response import usage_of as anthropic_usage
from webrana_proxy.providers.base import Usage
from webrana_proxy.providers.catalogue import build_catalogue, load_catalogue, rates_on, read_data
from webrana_proxy.providers.costs import Rates
from webrana_proxy.providers.gemini_response import usage_of as gemini_usage
from webrana_proxy.providers.openai_responses import usage_of as responses_usage
from webrana_proxy.providers.passthrough import usage_from
from webrana_proxy.providers.pricebook import DbPrice, PriceBook

RATE = 16_500  # IDR per USD in these tests
DAY = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def book() -> PriceBook:
    return PriceBook(load_catalogue())


def nano(usd_micro: float) -> int:
    """Micro-USD worked out by hand -> nano-USD."""
    return round(usd_micro * 1000)


# --- OpenAI (Chat Completions usage, passthrough lane) -------------------------------------------------------

def test_openai_cached_input_is_charged_at_the_cache_read_rate(book: PriceBook) -> None:
    # gpt-5.4-mini: $0.75 input, $0.075 cached, $4.50 output per Mtok. 100k prompt of which 90k cached, 1,000 out
    # (600 of them reasoning, which is output): 10,000 x 0.75 + 90,000 x 0.075 + 1,000 x 4.5 = 18,750 micro-USD.
    # The old flat price said 100,000 x 0.75 + 4,500 = 79,500: four times too much.
    usage = usage_from({"prompt_tokens": 100_000, "completion_tokens": 1_000, "total_tokens": 101_000,
                        "prompt_tokens_details": {"cached_tokens": 90_000},
                        "completion_tokens_details": {"reasoning_tokens": 600}})
    assert usage is not None and usage.reasoning_tokens == 600
    priced, unpriced = book.price("openai", "gpt-5.4-mini-2026-03-17", usage, RATE, DAY)
    assert priced.cost_usd_nano == nano(18_750)
    assert priced.cost_idr_micro == 309_375_000  # Rp 309,375
    assert (priced.source, priced.model, unpriced) == ("catalogue", "gpt-5.4-mini", False)
    assert priced.version.startswith("genai-prices ")


def test_openai_service_tier_flex_priority_and_the_default_factor(book: PriceBook) -> None:
    body = {"prompt_tokens": 10_000, "completion_tokens": 1_000, "total_tokens": 11_000}
    # gpt-5.4-mini flex (the data's variant, 0.375/2.25): 10,000 x 0.375 + 1,000 x 2.25 = 6,000 micro-USD;
    # priority (1.5/9): 15,000 + 9,000 = 24,000
    flex = usage_from(body, "flex")
    priority = usage_from(body, "priority")
    assert flex is not None and priority is not None
    assert book.price("openai", "gpt-5.4-mini", flex, RATE, DAY)[0].cost_usd_nano == nano(6_000)
    assert book.price("openai", "gpt-5.4-mini", priority, RATE, DAY)[0].cost_usd_nano == nano(24_000)
    # gpt-5.5 has no flex variant in the data: OpenAI's rule, half price. Standard: 10,000 x 5 + 1,000 x 30 = 80,000
    std = usage_from(body, "default")
    assert std is not None
    assert book.price("openai", "gpt-5.5", std, RATE, DAY)[0].cost_usd_nano == nano(80_000)
    assert book.price("openai", "gpt-5.5", flex, RATE, DAY)[0].cost_usd_nano == nano(40_000)


def test_openai_cache_write_and_the_long_prompt_tier(book: PriceBook) -> None:
    # gpt-6-luna above 272k input tokens: input 0.2, cache read 0.02, cache write 0.25, output 0.75 for the whole call.
    # 300,000 prompt = 150,000 fresh + 100,000 cached + 50,000 written; 2,000 out:
    # 150,000 x 0.2 + 100,000 x 0.02 + 50,000 x 0.25 + 2,000 x 0.75 = 30,000 + 2,000 + 12,500 + 1,500 = 46,000
    usage = usage_from({"prompt_tokens": 300_000, "completion_tokens": 2_000, "total_tokens": 302_000,
                        "prompt_tokens_details": {"cached_tokens": 100_000, "cache_write_tokens": 50_000}})
    assert usage is not None and usage.cache_write_tokens == 50_000
    assert book.price("openai", "gpt-6-luna", usage, RATE, DAY)[0].cost_usd_nano == nano(46_000)
    # Below the tier: 1,000 x 0.1 + 100 x 0.5 = 150 micro-USD (gpt-6-luna is $0.10/$0.50, not gpt-4o's $2.50/$10)
    small = Usage(prompt_tokens=1_000, completion_tokens=100, total_tokens=1_100)
    assert book.price("openai", "gpt-6-luna", small, RATE, DAY)[0].cost_usd_nano == nano(150)


def test_a_ten_token_embedding_is_not_free(book: PriceBook) -> None:
    # text-embedding-3-small $0.02/Mtok: 10 tokens = 0.2 micro-USD = 200 nano-USD = Rp 0.0033
    priced, _ = book.price("openai", "text-embedding-3-small", Usage(prompt_tokens=10, total_tokens=10), RATE, DAY)
    assert (priced.cost_usd_nano, priced.cost_idr_micro) == (200, 3_300)


def test_fine_tunes_are_priced_as_fine_tunes(book: PriceBook) -> None:
    # ft:gpt-4o-mini: $0.30 / $1.20 (not gpt-4o's $2.50 / $10): 1,000 x 0.3 + 1,000 x 1.2 = 1,500 micro-USD
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, total_tokens=2_000)
    priced, _ = book.price("openai", "ft:gpt-4o-mini-2024-07-18:acme::abc123", usage, RATE, DAY)
    assert priced.cost_usd_nano == nano(1_500)


# --- Anthropic (Messages usage: native lane and translated lane read the same block) --------------------------

def test_anthropic_cache_reads_and_5m_and_1h_cache_writes(book: PriceBook) -> None:
    # claude-sonnet-5-5: input 2, 5 min cache write 2.5, 1 h cache write 4, cache read 0.1, output 10.
    # 1,000 x 2 + 2,000 x 2.5 + 1,000 x 4 + 20,000 x 0.1 + 500 x 10 = 2,000 + 5,000 + 4,000 + 2,000 + 5,000 = 18,000
    usage = anthropic_usage({"input_tokens": 1_000, "cache_creation_input_tokens": 3_000,
                             "cache_creation": {"ephemeral_5m_input_tokens": 2_000, "ephemeral_1h_input_tokens": 1_000},
                             "cache_read_input_tokens": 20_000, "output_tokens": 500})
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.cache_write_tokens, usage.cache_write_1h_tokens) == (
        24_000, 20_000, 3_000, 1_000)
    priced, _ = book.price("anthropic", "claude-sonnet-5-5", usage, RATE, DAY)
    assert priced.cost_usd_nano == nano(18_000)
    assert priced.cost_idr_micro == 297_000_000  # 0.018 USD x 16,500 = Rp 297


def _anthropic_stream(thinking: int) -> bytes:
    """A recorded Messages stream's usage events: input at message_start, output (and its thinking part, in
    ``output_tokens_details``) at message_delta."""
    start = {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
             "model": "claude-opus-5-5", "content": [], "stop_reason": None, "usage": {
                 "input_tokens": 100, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0,
                 "output_tokens": 1}}}
    delta = {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
             "usage": {"output_tokens": 2_000, "output_tokens_details": {"thinking_tokens": thinking}}}
    return b"".join(f"event: {e['type']}\ndata: {orjson.dumps(e).decode()}\n\n".encode()
                    for e in (start, delta, {"type": "message_stop"}))


def test_anthropic_thinking_tokens_are_read_into_the_reasoning_count() -> None:
    # Anthropic's usage.output_tokens_details.thinking_tokens (the SDK's OutputTokensDetails): part of output_tokens.
    usage = anthropic_usage({"input_tokens": 100, "output_tokens": 2_000,
                             "output_tokens_details": {"thinking_tokens": 1_500}})
    assert usage is not None and (usage.completion_tokens, usage.reasoning_tokens) == (2_000, 1_500)
    # never more than the output it is part of
    odd = anthropic_usage({"input_tokens": 1, "output_tokens": 10, "output_tokens_details": {"thinking_tokens": 99}})
    assert odd is not None and odd.reasoning_tokens == 10
    native = NativeMessagesStream()
    native.feed(_anthropic_stream(1_200))
    translated = AnthropicStream("claude-opus-5-5", include_usage=True)
    out = b"".join(translated.feed(_anthropic_stream(1_200)))
    for got in (native.usage, translated.usage):
        assert got is not None and (got.prompt_tokens, got.completion_tokens, got.reasoning_tokens) == (
            100, 2_000, 1_200)
    assert b'"completion_tokens_details":{"reasoning_tokens":1200}' in out  # the client's usage chunk says so


def test_responses_usage_reads_reasoning_tokens() -> None:
    usage = responses_usage({"input_tokens": 1_000, "input_tokens_details": {"cached_tokens": 600},
                             "output_tokens": 500, "output_tokens_details": {"reasoning_tokens": 300},
                             "total_tokens": 1_500})
    assert usage is not None and (usage.cached_tokens, usage.reasoning_tokens) == (600, 300)


# --- Google Gemini (usageMetadata) -------------------------------------------------------------------------

GEMINI_META = {"promptTokenCount": 10_000, "cachedContentTokenCount": 4_000, "candidatesTokenCount": 800,
               "thoughtsTokenCount": 1_200, "toolUsePromptTokenCount": 500, "totalTokenCount": 12_500}


def test_gemini_thoughts_and_tool_use_prompt_tokens_and_a_price_that_doubled_on_a_date(book: PriceBook) -> None:
    got = gemini_usage(GEMINI_META)
    assert got is not None
    usage, thoughts = got
    # prompt = 10,000 + 500 tool-use prompt; output = 800 + 1,200 thoughts
    assert (usage.prompt_tokens, usage.completion_tokens, usage.reasoning_tokens, thoughts) == (
        10_500, 2_000, 1_200, 1_200)
    # gemini-4-argon until 2026-11-30: 2 / 0.1 cached / 10: 6,500 x 2 + 4,000 x 0.1 + 2,000 x 10 = 33,400
    before = datetime(2026, 11, 30, 23, 59, tzinfo=UTC)
    on = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    assert book.price("google", "gemini-4-argon", usage, RATE, before)[0].cost_usd_nano == nano(33_400)
    assert book.price("google", "gemini-4-argon", usage, RATE, on)[0].cost_usd_nano == nano(66_800)  # doubled


def test_gemini_3_8_flash_doubles_on_new_year(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, total_tokens=2_000)
    # 1,000 x 0.75 + 1,000 x 3.75 = 4,500 micro-USD; from 2027-01-01 1.5 + 7.5 -> 9,000
    assert book.price("google", "gemini-3.8-flash", usage, RATE, DAY)[0].cost_usd_nano == nano(4_500)
    new_year = datetime(2027, 1, 1, tzinfo=UTC)
    assert book.price("google", "gemini-3.8-flash", usage, RATE, new_year)[0].cost_usd_nano == nano(9_000)


def test_gemini_pro_above_200k_and_free_gemma(book: PriceBook) -> None:
    # gemini-3.1-pro-preview above 200k: input 4, output 18: 250,000 x 4 + 1,000 x 18 = 1,018,000 micro-USD
    long = Usage(prompt_tokens=250_000, completion_tokens=1_000, total_tokens=251_000)
    assert book.price("google", "gemini-3.1-pro-preview", long, RATE, DAY)[0].cost_usd_nano == nano(1_018_000)
    priced, unpriced = book.price("google", "gemma-4-31b-it", long, RATE, DAY)
    assert (priced.cost_usd_nano, priced.source, unpriced) == (0, "catalogue", False)  # free on the Gemini API


# --- Qwen (DashScope, OpenAI-shaped usage) ------------------------------------------------------------------

def test_qwen_thinking_output_price_and_prompt_tiers(book: PriceBook) -> None:
    # qwen-plus: input 0.4, output 1.2, thinking-mode output 4 (up to 256k input)
    thinking = usage_from({"prompt_tokens": 1_000, "completion_tokens": 2_000, "total_tokens": 3_000,
                           "completion_tokens_details": {"reasoning_tokens": 1_500}})
    plain = usage_from({"prompt_tokens": 1_000, "completion_tokens": 2_000, "total_tokens": 3_000})
    assert thinking is not None and plain is not None
    assert book.price("qwen", "qwen-plus", thinking, RATE, DAY)[0].cost_usd_nano == nano(400 + 8_000)
    assert book.price("qwen", "qwen-plus", plain, RATE, DAY)[0].cost_usd_nano == nano(400 + 2_400)
    # the call asked for thinking mode (enable_thinking) and the answer reported no reasoning count: still the
    # thinking-mode price, as DashScope bills it
    asked = Usage(prompt_tokens=1_000, completion_tokens=2_000, total_tokens=3_000, thinking_mode=True)
    assert book.price("qwen", "qwen-plus", asked, RATE, DAY)[0].cost_usd_nano == nano(400 + 8_000)
    # above 256k: input 1.2, output 3.6: 300,000 x 1.2 + 1,000 x 3.6 = 363,600
    long = Usage(prompt_tokens=300_000, completion_tokens=1_000, total_tokens=301_000)
    assert book.price("qwen", "qwen-plus-latest", long, RATE, DAY)[0].cost_usd_nano == nano(363_600)
    # qwen3-coder-plus above 32k: 1.8 / 9: 40,000 x 1.8 + 1,000 x 9 = 81,000
    coder = Usage(prompt_tokens=40_000, completion_tokens=1_000, total_tokens=41_000)
    priced, _ = book.price("qwen", "qwen3-coder-plus", coder, RATE, DAY)
    assert (priced.cost_usd_nano, priced.source) == (nano(81_000), "override")
    # qwen3.8-max with cached input (prompt_tokens_details): 1,000 x 2 + 9,000 x 0.25 + 100 x 6 = 4,850
    cached = usage_from({"prompt_tokens": 10_000, "completion_tokens": 100, "total_tokens": 10_100,
                         "prompt_tokens_details": {"cached_tokens": 9_000}})
    assert cached is not None
    assert book.price("qwen", "qwen3.8-max", cached, RATE, DAY)[0].cost_usd_nano == nano(4_850)


# --- Unknown models, retired models, provider-reported cost, admin overrides ---------------------------------

def test_unknown_model_is_charged_as_the_dearest_current_general_model_and_marked(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=1_000_000, total_tokens=2_000_000)
    expected = {"openai": "gpt-6.2-astra", "anthropic": "claude-opus-5-5", "google": "gemini-4-argon",
                "qwen": "qwen3.8-max"}
    for provider, dearest in expected.items():
        priced, unpriced = book.price(provider, "brand-new-model-x", usage, RATE, DAY)
        assert (priced.source, priced.model, unpriced) == ("fallback", dearest, True)
        known, _ = book.price(provider, dearest, usage, RATE, DAY)
        assert priced.cost_usd_nano == known.cost_usd_nano > 0
    # claude-sonnet-4-5 shut down on 2026-11-30: no longer its own price
    assert book.price("anthropic", "claude-sonnet-4-5", usage, RATE, DAY)[0].source == "fallback"
    assert book.price("anthropic", "claude-sonnet-4-5", usage, RATE,
                      datetime(2026, 11, 1, tzinfo=UTC))[0].source == "catalogue"


def test_unknown_provider_costs_nothing(book: PriceBook) -> None:
    priced, _ = book.price("nope", "x", Usage(prompt_tokens=10**6, total_tokens=10**6), RATE, DAY)
    assert priced.cost_usd_nano == priced.cost_idr_micro == 0


def test_a_cost_the_provider_reports_wins(book: PriceBook) -> None:
    usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, total_tokens=2_000, provider_cost_usd_nano=123_456)
    priced, unpriced = book.price("openai", "gpt-6-luna", usage, RATE, DAY)
    assert (priced.cost_usd_nano, priced.source, unpriced) == (123_456, "provider", False)
    assert priced.cost_idr_micro == 2_037_024  # 123,456 nano-USD x 16,500 = 2,037,024 micro-IDR


def test_admin_overrides_win_from_their_valid_from() -> None:
    book = PriceBook(load_catalogue())
    usage = Usage(prompt_tokens=200_000, completion_tokens=0, total_tokens=200_000)
    later = datetime(2026, 12, 10, tzinfo=UTC)
    book.replace_db_overrides([DbPrice("a1", "openai", "gpt-6-luna", later, Rates.from_json({"input": "0.05"})),
                               DbPrice("a2", "openai", "gpt-7*", DAY, Rates.from_json({"input": "3", "output": "9"}))])
    assert book.price("openai", "gpt-6-luna", usage, RATE, DAY)[0].cost_usd_nano == nano(20_000)  # 200,000 x 0.1
    priced, _ = book.price("openai", "gpt-6-luna", usage, RATE, later)
    assert (priced.cost_usd_nano, priced.source, priced.version) == (nano(10_000), "override", "db a1")
    priced, unpriced = book.price("openai", "gpt-7-preview", usage, RATE, DAY)  # released this morning
    assert (priced.cost_usd_nano, priced.source, unpriced) == (nano(600_000), "override", False)


@given(st.sampled_from(["gpt-6-luna", "gpt-5.5", "gpt-5.4-mini"]), st.integers(0, 10**7), st.integers(0, 10**7),
       st.integers(0, 10**7), st.integers(1, 30_000))
def test_cost_never_decreases_with_more_output_and_cached_never_costs_more(
    model: str, prompt: int, completion: int, cached: int, rate: int
) -> None:
    book = PriceBook(load_catalogue())
    cached = min(cached, prompt)
    base = book.price("openai", model, Usage(prompt, completion, prompt + completion), rate, DAY)[0]
    more = book.price("openai", model, Usage(prompt, completion + 1000, prompt + completion), rate, DAY)[0]
    with_cache = book.price("openai", model, Usage(prompt, completion, prompt + completion, cached), rate, DAY)[0]
    assert 0 <= base.cost_usd_nano <= more.cost_usd_nano
    assert with_cache.cost_usd_nano <= base.cost_usd_nano


# --- The catalogue is the generated data plus the overrides ---------------------------------------------------

def _rates_of(periods: list[dict[str, Any]], extra: dict[str, Any] | None = None) -> list[tuple[Any, Rates]]:
    return [(p.get("from"), Rates.from_json({**p["rates"], **(extra or {})})) for p in periods]


def test_the_catalogue_equals_generated_data_plus_overrides() -> None:
    source, overrides = read_data()
    catalogue = build_catalogue(source, overrides)
    replaced = {(o["provider"], o["id"]): o for o in overrides["models"] if "prices" in o}
    patched = {(o["provider"], o["id"]): o for o in overrides["models"] if "prices" not in o}
    seen = set()
    for provider, spec in source["providers"].items():
        for m in spec["models"]:
            key = (provider, m["id"])
            entry = catalogue.by_id(provider, m["id"])
            assert entry is not None, key  # nothing in the source is dropped
            seen.add(key)
            if key in replaced:
                continue
            patch = patched.get(key, {})
            want = sorted(_rates_of(m["prices"], patch.get("extra_rates")), key=lambda p: p[0] or "")
            got = [(d.isoformat() if d else None, r) for d, r in entry.periods]
            assert got == want, key
            assert entry.retires_on == (date.fromisoformat(patch["retires_on"]) if "retires_on" in patch else None)
            assert entry.context_window == patch.get("context_window", m["context_window"])
            assert entry.source == ("override" if "extra_rates" in patch else "catalogue")
    for key, o in replaced.items():
        entry = catalogue.by_id(*key)
        assert entry is not None and entry.source == "override"
        assert [(d.isoformat() if d else None, r) for d, r in entry.periods] == _rates_of(o["prices"])
        assert catalogue.find(key[0], key[1]) is entry  # an override is matched before the source's entry
        seen.add(key)
    assert all((p, m.id) in seen for p, ms in catalogue.models.items() for m in ms)  # nothing invented


def test_the_overrides_file_is_reviewed_data() -> None:
    source, overrides = read_data()
    assert source["source"] == "genai-prices" and source["source_version"] and source["generated_on"]
    for o in overrides["models"]:
        assert o["reason"] and o["url"].startswith("https://"), o["id"]
    catalogue = build_catalogue(source, overrides)
    for provider, ids in catalogue.listed.items():
        for model_id in ids:
            assert catalogue.by_id(provider, model_id) is not None, model_id  # every listed model has a price
        assert set(catalogue.general[provider]) <= set(ids)


def test_the_vendored_file_is_what_make_prices_writes() -> None:
    if importlib.util.find_spec("genai_prices") is None:
        pytest.skip("genai-prices is only installed by `make prices`")
    from importlib.metadata import version

    from prices.generate import generate
    source, _ = read_data()
    if version("genai-prices") != source["source_version"]:
        pytest.skip("a different genai-prices is installed than the one the data was generated from")
    fresh = generate(date.fromisoformat(source["generated_on"]))
    assert orjson.loads(orjson.dumps(fresh)) == source


def test_staleness_is_reported_not_failed() -> None:
    source, overrides = read_data()
    catalogue = build_catalogue(source, overrides)
    generated = catalogue.generated_on
    assert catalogue.stale(generated, 45) == []
    late = date.fromordinal(generated.toordinal() + 46)
    assert any("days old" in line for line in catalogue.stale(late, 45))
    # a listed model past its retires_on is news too (gpt-4.1 is not listed; gpt-6-luna gets a date here)
    retiring = {**overrides, "models": [*overrides["models"], {
        "provider": "openai", "id": "gpt-6-luna", "retires_on": "2027-02-01", "reason": "t", "url": "https://x"}]}
    later = build_catalogue(source, retiring)
    assert any("gpt-6-luna" in line for line in later.stale(date(2027, 2, 1), 10_000))
    assert all(m.id != "gpt-6-luna" for m in later.current("openai", date(2027, 2, 1)))


def test_current_models_exclude_retired_ones() -> None:
    catalogue = load_catalogue()
    ids = {m.id for p in catalogue.models for m in catalogue.current(p, DAY.date())}
    assert {"gpt-6-luna", "claude-sonnet-5-5", "gemini-4-argon", "qwen3.8-max"} <= ids
    assert not ids & {"gpt-4o", "claude-sonnet-4-5", "gemini-2.5-flash"}
    assert rates_on(catalogue.by_id("google", "gemini-4-argon").periods, date(2026, 12, 6)).input  # type: ignore[union-attr]
