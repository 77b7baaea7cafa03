"""``python -m bench --journal-ab [--journal-rounds 3]``: the gateway with and without the usage journal, interleaved.

Each round starts two one-worker gateways in turn (order alternating between rounds: on/off, off/on, ...) with the
same settings except ``WEBRANA_USAGE_JOURNAL_DIR`` (a folder, or ``off``), warms each, and measures on it: direct
json c1 (the fake alone, for the added latency of that moment), gateway json c1, json c64, stream c1 and stream c64.
Per round: added latency = gateway c1 p50 minus direct c1 p50, calls/s at c64. The medians over the rounds are
compared: the journal passes when calls/s at c64 are within 3% and the c=1 added latency within 0.03 ms.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any

import orjson

from bench.harness import RESULTS, session
from bench.overhead import HIGH, Runner

THROUGHPUT_TOLERANCE = 0.03  # the "calls/s within 3%"
LATENCY_TOLERANCE_MS = 0.03  # the "c=1 added latency within 0.03 ms"


def journal_cost_us(n: int = 50_000) -> dict[str, float]:
    """What the journal adds to one call, measured in this process (no load, so the shared machine's noise hardly
    shows): serialising the row, and its write(2) into the page cache; the median of 5 runs of ``n`` rows."""
    import tempfile
    import time
    import uuid
    from pathlib import Path

    from webrana_proxy.usage import UsageRecord
    from webrana_proxy.usage_journal import Journal

    rec = UsageRecord(request_id="req_0123456789ab1f", user_id=uuid.uuid4(), proxy_key_id=uuid.uuid4(),
                      provider="openai", model="gpt-4o-mini", endpoint="chat", stream=False, status=200,
                      prompt_tokens=20, completion_tokens=17, total_tokens=37, tokens_estimated=False, latency_ms=2,
                      ttfb_ms=1, upstream_request_id="chatcmpl-abc", error_type=None, created_at=datetime.now(UTC),
                      cost_idr_micro=3_086_250, cost_usd_nano=187_045, usd_to_idr=16_500, price_source="catalogue",
                      price_version="genai-prices 0.2.5 2026-12-06", cached_tokens=8, reasoning_tokens=4)
    line = rec.to_line()
    serialise: list[float] = []
    write: list[float] = []
    with tempfile.TemporaryDirectory(dir=RESULTS) as folder:
        journal = Journal(Path(folder), 0.1)
        try:
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(n):
                    rec.to_line()
                serialise.append((time.perf_counter() - started) / n * 1e6)
                started = time.perf_counter()
                for _ in range(n):
                    journal.append(line)
                write.append((time.perf_counter() - started) / n * 1e6)
                journal.rotate()
        finally:
            journal.close(remove=True)
    return {"serialise_us": round(statistics.median(serialise), 2), "write_us": round(statistics.median(write), 2),
            "line_bytes": len(line)}


def run_journal_ab(*, rounds: int, duration: float, python_load: bool) -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    cost = journal_cost_us()
    print(f"journal per call, in process: serialise {cost['serialise_us']} us + write(2) {cost['write_us']} us "
          f"({cost['line_bytes']} bytes a row)", flush=True)
    figures: dict[str, list[dict[str, float]]] = {"on": [], "off": []}
    with session(duration=duration, python_load=python_load) as h:
        runner = Runner(h)
        direct_check = h.check_for(h.direct_url, h.json_body, h.direct_headers)
        for i in range(rounds):
            for mode in (("on", "off") if i % 2 == 0 else ("off", "on")):
                gw = h.gateway(workers=1, journal=mode == "on")
                try:
                    url, headers = h.gateway_url(gw), h.gateway_headers
                    jc = h.check_for(url, h.json_body, headers)
                    sc = h.check_for(url, h.stream_body, headers)
                    runner.warm(url, headers, jc, sc, gateway=True)
                    direct = runner.measure(f"direct json c1 #{i + 1}", "direct", "json", h.direct_url, h.json_body,
                                            h.direct_headers, direct_check, 1, None)
                    c1 = runner.measure(f"journal {mode} json c1 #{i + 1}", "gateway", "json", url, h.json_body,
                                        headers, jc, 1, gw)
                    c64 = runner.measure(f"journal {mode} json c{HIGH} #{i + 1}", "gateway", "json", url,
                                         h.json_body, headers, jc, HIGH, gw)
                    s1 = runner.measure(f"journal {mode} stream c1 #{i + 1}", "gateway", "stream", url,
                                        h.stream_body, headers, sc, 1, gw)
                    s64 = runner.measure(f"journal {mode} stream c{HIGH} #{i + 1}", "gateway", "stream", url,
                                         h.stream_body, headers, sc, HIGH, gw)
                finally:
                    gw.stop()
                figures[mode].append({
                    "json_c1_added_p50_ms": c1.result["p50_ms"] - direct.result["p50_ms"],
                    "json_c64_per_s": c64.result["rate"], "json_c64_cpu_ms": c64.cpu_ms_per_call or 0.0,
                    "stream_c1_added_p50_ms": s1.result["p50_ms"] - direct.result["p50_ms"],
                    "stream_c64_per_s": s64.result["rate"], "failures": float(
                        c1.result["failures"] + c64.result["failures"] + s1.result["failures"]
                        + s64.result["failures"])})
    medians = {mode: {k: round(statistics.median(r[k] for r in rows), 3) for k in rows[0]}
               for mode, rows in figures.items()}
    on, off = medians["on"], medians["off"]
    throughput = on["json_c64_per_s"] / off["json_c64_per_s"] - 1
    stream_throughput = on["stream_c64_per_s"] / off["stream_c64_per_s"] - 1
    latency = on["json_c1_added_p50_ms"] - off["json_c1_added_p50_ms"]
    stream_latency = on["stream_c1_added_p50_ms"] - off["stream_c1_added_p50_ms"]
    ok = (abs(throughput) <= THROUGHPUT_TOLERANCE and latency <= LATENCY_TOLERANCE_MS
          and not on["failures"] and not off["failures"])
    doc: dict[str, Any] = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "rounds": rounds,
                           "journal_cost_per_call": cost,
                           "seconds_per_scenario": duration, "rounds_on": figures["on"], "rounds_off": figures["off"],
                           "median_on": on, "median_off": off, "json_c64_change": round(throughput, 4),
                           "stream_c64_change": round(stream_throughput, 4), "json_c1_added_p50_delta_ms":
                           round(latency, 3), "stream_c1_added_p50_delta_ms": round(stream_latency, 3), "pass": ok}
    (RESULTS / "journal-ab.json").write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    print(f"journal on vs off, medians of {rounds} interleaved rounds: json c{HIGH} {on['json_c64_per_s']:.0f} vs "
          f"{off['json_c64_per_s']:.0f} calls/s ({throughput:+.1%}), json c1 added p50 {on['json_c1_added_p50_ms']:.3f}"
          f" vs {off['json_c1_added_p50_ms']:.3f} ms ({latency:+.3f}); stream c{HIGH} {on['stream_c64_per_s']:.0f} vs "
          f"{off['stream_c64_per_s']:.0f} ({stream_throughput:+.1%}), stream c1 added p50 "
          f"{on['stream_c1_added_p50_ms']:.3f} vs {off['stream_c1_added_p50_ms']:.3f} ms ({stream_latency:+.3f}): "
          f"{'PASS' if ok else 'MISS'}")
    return 0 if ok else 1
