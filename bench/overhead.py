"""The main bench: the fake upstream directly, then through a bare aiohttp relay (the floor), then through the
gateway (1 worker, then 2), same run, same tool, same checks.

Scenarios (each ``duration`` seconds, after a short warm-up per target): non-streamed chat at concurrency 1
and 64, streamed chat (~20 events) at 1 and 64, time to first token on a paced stream (not through the relay,
which only fronts the instant fake); on the one-worker gateway, after its memory is read, sign-in latency
(``POST /api/auth/login``, four people at once, a bounded loop: ``bench/signin.py``). Then the dialect rounds:
a Messages passthrough stream (a Claude model on ``/v1/messages``, the native lane) and a Responses passthrough
stream (an OpenAI model on ``/v1/responses``, ``store: false`` as Codex sends it, the native lane) against the
chat passthrough stream, and the chat stream through an alias whose first hop is healthy (``wbr/bench`` =
gpt-4o-mini -> qwen-plus) against calling gpt-4o-mini itself, interleaved, ``rounds`` times. Through the relay and
the gateway, the process's CPU time per call comes from /proc/<pid>/stat (utime + stime, all its processes) and its
memory from /proc/<pid>/status (VmHWM peak, VmRSS after the run).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import procstat
from bench.harness import Harness, session
from bench.loadgen import Check, LoadResult, measure_ttft
from bench.signin import SIGNIN_CONCURRENCY, SIGNIN_TARGET_P95_MS, measure_signin
from bench.stack import Proc, usage_rows

HIGH = 64  # the high-concurrency level of the issue
TTFT_CONCURRENCY = 4  # paced streams in flight while timing the first token (the CPU is nearly idle)
WARMUP_SECONDS = 2.0  # per target: fills the key cache, seeds the quota counter, opens upstream connections
SETTLE_SECONDS = 1.0  # after the load: let the usage writer flush before reading memory
MIN_RELAY_SECONDS = 3.0  # the relay's scenarios may be shorter than the others (run time), never below this
RELAY_CLIENTS = {"upstream": "aiohttp server + the gateway's upstream client",
                 "aiohttp": "aiohttp server + aiohttp's client"}
LOGGED_TARGETS = ("gateway", "gateway-x2")  # targets whose every call must leave a usage row
DIALECT_SLACK = 1.10  # a dialect's passthrough row: within 10% of the chat passthrough's added latency and CPU
ALIAS_RATE_FLOOR = 0.95  # an alias with a healthy first hop: at least 95% of the model's own calls/s (c=64)...
ALIAS_ADDED_MS = 0.05  # ...and at most 0.05 ms more added latency (c=1 p50), medians of the interleaved rounds

# (key, description, target, how it compares)
TARGETS = (
    ("added_json_c1_p50_ms", "added latency, non-streamed, c=1, p50", 0.3, "<="),
    ("added_json_c1_p99_ms", "added latency, non-streamed, c=1, p99", 1.5, "<="),
    ("gateway_json_c64_rate", "non-streamed calls/s at c=64", 3500.0, ">="),
    ("gateway_json_c64_p99_ms", "non-streamed p99 at c=64 (ms)", 40.0, "<="),
    ("added_stream_c1_p50_ms", "added latency, stream, c=1, p50", 1.0, "<="),
    ("gateway_stream_c64_rate", "streams/s at c=64", 2500.0, ">="),
    ("added_ttft_p50_ms", "added time to first token, p50", 1.0, "<="),
    ("rss_after_mb", "RSS per worker after the run (MB)", 100.0, "<="),
    ("scaling_json_x2", "--workers 2 throughput scaling (non-streamed)", 1.7, ">="),
    ("messages_over_chat_added_stream_c1_p50", "Messages / chat stream, added c=1 p50 (median)", DIALECT_SLACK,
     "<="),
    ("messages_over_chat_cpu_stream_c64", "Messages / chat stream, CPU per call c=64 (median)", DIALECT_SLACK,
     "<="),
    ("responses_over_chat_added_stream_c1_p50", "Responses / chat stream, added c=1 p50 (median)", DIALECT_SLACK,
     "<="),
    ("responses_over_chat_cpu_stream_c64", "Responses / chat stream, CPU per call c=64 (median)", DIALECT_SLACK,
     "<="),
    ("alias_over_chat_rate_stream_c64", "alias / its model, stream calls/s c=64 (median)", ALIAS_RATE_FLOOR, ">="),
    ("alias_minus_chat_added_stream_c1_p50_ms", "alias - its model, added c=1 p50 ms (median)", ALIAS_ADDED_MS,
     "<="),
    ("signin_c4_p95_ms", f"sign-in p95, {SIGNIN_CONCURRENCY} at once (ms)", SIGNIN_TARGET_P95_MS, "<="),
)


@dataclass
class Row:
    name: str
    target: str  # direct | relay | gateway | gateway-x2
    kind: str  # json | stream | ttft | signin
    concurrency: int
    result: dict[str, Any]
    cpu_ms_per_call: float | None = None  # of the process under test: the gateway, or the relay
    gateway_busy: float | None = None  # its CPU seconds / wall seconds (1.0 = one core flat out)
    upstream_busy: float | None = None
    machine_busy: float | None = None  # every process on the machine, in cores (other users' load shows here)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "target": self.target, "kind": self.kind, "concurrency": self.concurrency,
                **self.result, "cpu_ms_per_call": self.cpu_ms_per_call, "gateway_busy": self.gateway_busy,
                "upstream_busy": self.upstream_busy,
                "machine_busy": self.machine_busy}


class Runner:
    def __init__(self, h: Harness) -> None:
        self.h = h
        self.rows: list[Row] = []
        self.gateway_calls = 0

    def measure(self, name: str, target: str, kind: str, url: str, body: bytes, headers: dict[str, str],
                check: Check, concurrency: int, gw: Proc | None, duration: float | None = None) -> Row:
        """One scenario; ``gw`` is the process under test (gateway or relay), None when measuring directly."""
        gw_pids = procstat.tree(gw.pid) if gw else []
        before_gw = procstat.sample(gw_pids) if gw else None
        before_up = procstat.sample([self.h.instant.pid, self.h.paced.pid])
        before_all = procstat.machine_busy_seconds()
        started = time.perf_counter()
        if kind == "ttft":
            ttft = asyncio.run(measure_ttft(url, body, headers, check, concurrency=concurrency,
                                            duration=self.h.duration))
            result: dict[str, Any] = ttft.as_dict()
            calls = ttft.ok + ttft.failures
        else:
            load: LoadResult = self.h.load(url, body, headers, check, concurrency=concurrency, duration=duration)
            result = load.as_dict()
            calls = load.calls
        wall = time.perf_counter() - started
        after_up = procstat.sample([self.h.instant.pid, self.h.paced.pid])
        row = Row(name, target, kind, concurrency, result,
                  upstream_busy=round((after_up.cpu_seconds - before_up.cpu_seconds) / wall, 2),
                  machine_busy=round((procstat.machine_busy_seconds() - before_all) / wall, 2))
        if target in LOGGED_TARGETS:
            self.gateway_calls += calls
        if gw and before_gw:
            after_gw = procstat.sample(gw_pids)
            cpu = after_gw.cpu_seconds - before_gw.cpu_seconds
            row.cpu_ms_per_call = round(cpu * 1000 / calls, 3) if calls else None
            row.gateway_busy = round(cpu / wall, 2)
        self.rows.append(row)
        _print_row(row)
        return row

    def signin(self, gw: Proc) -> Row:
        """Sign-in latency on ``gw``: SIGNIN_CONCURRENCY people signing in at once, a bounded loop."""
        result = asyncio.run(measure_signin(f"http://127.0.0.1:{gw.port}", gateway_pid=gw.pid))
        row = Row(f"gateway signin c{SIGNIN_CONCURRENCY}", "gateway", "signin", SIGNIN_CONCURRENCY,
                  result.as_dict(), cpu_ms_per_call=result.cpu_ms_per_call)
        self.rows.append(row)
        _print_row(row)
        return row

    def warm(self, url: str, headers: dict[str, str], json_check: Check, stream_check: Check,
             gateway: bool) -> None:
        calls = self.h.load(url, self.h.json_body, headers, json_check, concurrency=HIGH,
                            duration=WARMUP_SECONDS).calls
        calls += self.h.load(url, self.h.stream_body, headers, stream_check, concurrency=HIGH,
                             duration=WARMUP_SECONDS / 2).calls
        if gateway:
            self.gateway_calls += calls

    def suite(self, target: str, url: str, paced_url: str | None, headers: dict[str, str], gw: Proc | None,
              duration: float | None = None) -> None:
        """json c1, json c64, stream c1, stream c64, and time to first token when ``paced_url`` is given."""
        h = self.h
        logged = target in LOGGED_TARGETS
        jc = h.check_for(url, h.json_body, headers)
        sc = h.check_for(url, h.stream_body, headers)
        if logged:
            self.gateway_calls += 2
        self.warm(url, headers, jc, sc, gateway=logged)
        self.measure(f"{target} json c1", target, "json", url, h.json_body, headers, jc, 1, gw, duration)
        self.measure(f"{target} json c{HIGH}", target, "json", url, h.json_body, headers, jc, HIGH, gw, duration)
        self.measure(f"{target} stream c1", target, "stream", url, h.stream_body, headers, sc, 1, gw, duration)
        self.measure(f"{target} stream c{HIGH}", target, "stream", url, h.stream_body, headers, sc, HIGH, gw,
                     duration)
        if paced_url is not None:
            pc = h.check_for(paced_url, h.paced_body, headers)
            if logged:
                self.gateway_calls += 1
            self.measure(f"{target} ttft c{TTFT_CONCURRENCY}", target, "ttft", paced_url, h.paced_body, headers,
                         pc, TTFT_CONCURRENCY, gw)


@dataclass(frozen=True, slots=True)
class Dialect:
    """A passthrough stream in another ingress dialect, measured against the chat passthrough stream."""

    name: str  # "messages"
    body: bytes
    direct_url: str
    direct_headers: dict[str, str]
    gateway_url: str
    gateway_headers: dict[str, str]


def dialect_rounds(runner: Runner, gw: Proc, dialects: list[Dialect], rounds: int, duration: float) -> None:
    """``rounds`` interleaved rounds of: chat and each dialect's stream, direct and through the gateway at c=1
    (added latency), then through the gateway at c=64 (CPU per call). Compared only within a round's
    neighbours: this VM moves 20-30% between runs, less between adjacent scenarios."""
    h = runner.h
    chat = Dialect("chat", h.stream_body, h.direct_url, h.direct_headers, h.gateway_url(gw), h.gateway_headers)
    checks: dict[tuple[str, str], Check] = {}
    for d in (chat, *dialects):
        checks[d.name, "direct"] = h.check_for(d.direct_url, d.body, d.direct_headers)
        checks[d.name, "gateway"] = h.check_for(d.gateway_url, d.body, d.gateway_headers)
        runner.gateway_calls += 1
        runner.gateway_calls += h.load(d.gateway_url, d.body, d.gateway_headers, checks[d.name, "gateway"],
                                       concurrency=HIGH, duration=WARMUP_SECONDS / 2).calls
    for r in range(1, rounds + 1):
        for d in (chat, *dialects):
            runner.measure(f"direct {d.name} stream c1 #{r}", "direct", "stream", d.direct_url, d.body,
                           d.direct_headers, checks[d.name, "direct"], 1, None, duration)
            runner.measure(f"gateway {d.name} stream c1 #{r}", "gateway", "stream", d.gateway_url, d.body,
                           d.gateway_headers, checks[d.name, "gateway"], 1, gw, duration)
        for d in (chat, *dialects):
            runner.measure(f"gateway {d.name} stream c{HIGH} #{r}", "gateway", "stream", d.gateway_url, d.body,
                           d.gateway_headers, checks[d.name, "gateway"], HIGH, gw, duration)


def dialect_figures(rows: list[Row]) -> dict[str, float]:
    """Per dialect: medians over the rounds of the added c=1 p50 and the c=64 CPU per call, and (for each
    dialect other than chat) the median of its per-round ratio to chat's."""
    by = {r.name: r for r in rows}
    names = sorted({n.split()[1] for n in by if n.startswith("gateway ") and n.endswith(" #1")
                    and f"direct {n.split()[1]} stream c1 #1" in by})
    if "chat" not in names:
        return {}
    added: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    rate: dict[str, list[float]] = {}
    r = 1
    while f"gateway chat stream c1 #{r}" in by:
        for n in names:
            added.setdefault(n, []).append(by[f"gateway {n} stream c1 #{r}"].result["p50_ms"]
                                           - by[f"direct {n} stream c1 #{r}"].result["p50_ms"])
            cpu.setdefault(n, []).append(by[f"gateway {n} stream c{HIGH} #{r}"].cpu_ms_per_call or 0.0)
            rate.setdefault(n, []).append(by[f"gateway {n} stream c{HIGH} #{r}"].result["rate"])
        r += 1
    out: dict[str, float] = {"dialect_rounds": float(r - 1)}
    for n in names:
        out[f"{n}_added_stream_c1_p50_ms_median"] = statistics.median(added[n])
        out[f"{n}_cpu_ms_per_call_stream_c64_median"] = statistics.median(cpu[n])
        if n != "chat":
            out[f"{n}_over_chat_added_stream_c1_p50"] = statistics.median(
                a / c if c > 0 else float("inf") for a, c in zip(added[n], added["chat"], strict=True))
            out[f"{n}_over_chat_cpu_stream_c64"] = statistics.median(
                a / c if c > 0 else float("inf") for a, c in zip(cpu[n], cpu["chat"], strict=True))
            out[f"{n}_over_chat_rate_stream_c64"] = statistics.median(
                a / c if c > 0 else 0.0 for a, c in zip(rate[n], rate["chat"], strict=True))
            out[f"{n}_minus_chat_added_stream_c1_p50_ms"] = statistics.median(
                a - c for a, c in zip(added[n], added["chat"], strict=True))
    return out


def _print_row(row: Row) -> None:
    r = row.result
    if row.kind == "signin":
        cpu = f"  cpu {row.cpu_ms_per_call:.3f} ms/call" if row.cpu_ms_per_call is not None else ""
        print(f"  {row.name:<26} {r['rate']:9.1f}/s  p50 {r['p50_ms']:7.3f} ms  p95 {r['p95_ms']:7.3f} ms  "
              f"ok {r['ok']}  failed {r['failures']}{cpu}", flush=True)
        return
    if row.kind == "ttft":
        print(f"  {row.name:<26} ttft p50 {r['ttft_p50_ms']:7.3f} ms  p99 {r['ttft_p99_ms']:7.3f} ms  "
              f"ok {r['ok']}  failed {r['failures']}", flush=True)
        return
    extra = f"  cpu {row.cpu_ms_per_call:.3f} ms/call" if row.cpu_ms_per_call is not None else ""
    print(f"  {row.name:<26} {r['rate']:9.1f}/s  p50 {r['p50_ms']:7.3f} ms  p99 {r['p99_ms']:7.3f} ms  "
          f"ok {r['ok']}  failed {r['failures']}{extra}", flush=True)


def _get(rows: list[Row], name: str) -> dict[str, Any]:
    return next(r.result for r in rows if r.name == name)


def derive(rows: list[Row], memory: dict[str, float]) -> dict[str, float]:
    def d(n: str) -> dict[str, Any]:
        return _get(rows, f"direct {n}")

    def g(n: str) -> dict[str, Any]:
        return _get(rows, f"gateway {n}")

    out = {
        "direct_json_c1_p50_ms": d("json c1")["p50_ms"],
        "gateway_json_c1_p50_ms": g("json c1")["p50_ms"],
        "added_json_c1_p50_ms": g("json c1")["p50_ms"] - d("json c1")["p50_ms"],
        "added_json_c1_p99_ms": g("json c1")["p99_ms"] - d("json c1")["p99_ms"],
        "direct_json_c64_rate": d(f"json c{HIGH}")["rate"],
        "gateway_json_c64_rate": g(f"json c{HIGH}")["rate"],
        "gateway_json_c64_p99_ms": g(f"json c{HIGH}")["p99_ms"],
        "added_stream_c1_p50_ms": g("stream c1")["p50_ms"] - d("stream c1")["p50_ms"],
        "added_stream_c1_p99_ms": g("stream c1")["p99_ms"] - d("stream c1")["p99_ms"],
        "direct_stream_c64_rate": d(f"stream c{HIGH}")["rate"],
        "gateway_stream_c64_rate": g(f"stream c{HIGH}")["rate"],
        "gateway_stream_c64_p99_ms": g(f"stream c{HIGH}")["p99_ms"],
        "added_ttft_p50_ms": g(f"ttft c{TTFT_CONCURRENCY}")["ttft_p50_ms"] - d(f"ttft c{TTFT_CONCURRENCY}")[
            "ttft_p50_ms"],
        "added_ttft_p99_ms": g(f"ttft c{TTFT_CONCURRENCY}")["ttft_p99_ms"] - d(f"ttft c{TTFT_CONCURRENCY}")[
            "ttft_p99_ms"],
        **memory,
    }
    cpu: dict[str, float | None] = {r.name: r.cpu_ms_per_call for r in rows if r.cpu_ms_per_call is not None}
    out["cpu_ms_per_call_json"] = cpu.get(f"gateway json c{HIGH}") or 0.0
    out["cpu_ms_per_call_stream"] = cpu.get(f"gateway stream c{HIGH}") or 0.0
    out.update(floor(rows, cpu))
    out.update(dialect_figures(rows))
    signin = {r.name: r.result for r in rows if r.kind == "signin"}
    if signin:
        s = signin[f"gateway signin c{SIGNIN_CONCURRENCY}"]
        out["signin_c4_p50_ms"] = s["p50_ms"]
        out["signin_c4_p95_ms"] = s["p95_ms"]
    x2 = {r.name: r.result for r in rows if r.target == "gateway-x2"}
    if x2:
        out["gateway_x2_json_c64_rate"] = x2[f"gateway-x2 json c{HIGH}"]["rate"]
        out["gateway_x2_stream_c64_rate"] = x2[f"gateway-x2 stream c{HIGH}"]["rate"]
        out["scaling_json_x2"] = out["gateway_x2_json_c64_rate"] / out["gateway_json_c64_rate"]
        out["scaling_stream_x2"] = out["gateway_x2_stream_c64_rate"] / out["gateway_stream_c64_rate"]
    return {k: round(v, 3) for k, v in out.items()}


def floor(rows: list[Row], cpu: dict[str, float | None]) -> dict[str, float]:
    """The bare relay against direct (what one aiohttp hop costs: the floor) and the gateway against the relay
    (what the features cost on top of it), for c=1 p50 and c=64 throughput, JSON and streams."""
    names = {r.name for r in rows}
    if f"relay json c{HIGH}" not in names:
        return {}
    out: dict[str, float] = {}
    for kind in ("json", "stream"):
        d1, r1, g1 = (_get(rows, f"{t} {kind} c1") for t in ("direct", "relay", "gateway"))
        dh, rh, gh = (_get(rows, f"{t} {kind} c{HIGH}") for t in ("direct", "relay", "gateway"))
        out.update({
            f"relay_{kind}_c1_p50_ms": r1["p50_ms"],
            f"relay_{kind}_c1_p99_ms": r1["p99_ms"],
            f"relay_added_{kind}_c1_p50_ms": r1["p50_ms"] - d1["p50_ms"],
            f"relay_added_{kind}_c1_p99_ms": r1["p99_ms"] - d1["p99_ms"],
            f"features_added_{kind}_c1_p50_ms": g1["p50_ms"] - r1["p50_ms"],
            f"features_added_{kind}_c1_p99_ms": g1["p99_ms"] - r1["p99_ms"],
            f"relay_{kind}_c64_rate": rh["rate"],
            f"relay_{kind}_c64_p99_ms": rh["p99_ms"],
            # Throughput as time per call: 1/rate. The relay's minus direct's is the hop; the gateway's minus
            # the relay's is what the features add per call at c=64 (ms of the bottleneck core).
            f"relay_added_{kind}_c64_ms_per_call": _per_call_ms(rh["rate"]) - _per_call_ms(dh["rate"]),
            f"features_added_{kind}_c64_ms_per_call": _per_call_ms(gh["rate"]) - _per_call_ms(rh["rate"]),
            f"gateway_over_relay_{kind}_c64_rate": gh["rate"] / rh["rate"] if rh["rate"] else 0.0,
            f"relay_cpu_ms_per_call_{kind}": cpu.get(f"relay {kind} c{HIGH}") or 0.0,
            f"relay_cpu_ms_per_call_{kind}_c1": cpu.get(f"relay {kind} c1") or 0.0,
            f"features_cpu_ms_per_call_{kind}": (cpu.get(f"gateway {kind} c{HIGH}") or 0.0)
            - (cpu.get(f"relay {kind} c{HIGH}") or 0.0),
        })
    return out


def _per_call_ms(rate: float) -> float:
    return 1000.0 / rate if rate else 0.0


def judge(derived: dict[str, float]) -> list[dict[str, Any]]:
    out = []
    for key, label, target, op in TARGETS:
        value = derived.get(key)
        ok = None if value is None else (value <= target if op == "<=" else value >= target)
        out.append({"key": key, "label": label, "target": f"{op} {target:g}", "value": value, "pass": ok})
    return out


def environment(h: Harness) -> dict[str, Any]:
    def ver(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "-"

    cpu = "unknown"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version()},
        "versions": {p: ver(p) for p in ("webrana-proxy", "aiohttp", "uvloop", "asyncpg", "redis", "orjson")},
        "load_generator": h.tool,
        "pinning": h.pinning.describe(),
        "loadavg_at_start": procstat.loadavg(),
        "duration_s": h.duration,
    }


def run(*, duration: float, python_load: bool, workers2: bool, relay_duration: float | None = None,
        relay_client: str = "upstream", dialect_rounds_n: int = 3, dialect_duration: float = 2.0) -> dict[str, Any]:
    relay_seconds = max(MIN_RELAY_SECONDS, relay_duration if relay_duration is not None else duration)
    with session(duration=duration, python_load=python_load) as h:
        info = environment(h)
        print(f"load generator: {info['load_generator']}\npinning: {info['pinning']}", flush=True)
        runner = Runner(h)
        print("direct (fake upstream, no gateway):", flush=True)
        runner.suite("direct", h.direct_url, h.direct_paced_url, h.direct_headers, None)
        relay = h.relay(relay_client)
        print(f"through the bare relay ({RELAY_CLIENTS[relay_client]}, no features; {relay_seconds:g} s per "
              "scenario):", flush=True)
        runner.suite("relay", h.relay_url(relay), None, h.direct_headers, relay, duration=relay_seconds)
        relay_peak = procstat.sample([relay.pid])
        relay.stop()
        gw = h.gateway(workers=1)
        print("through the gateway (1 worker):", flush=True)
        runner.suite("gateway", h.gateway_url(gw), h.gateway_url(gw), h.gateway_headers, gw)
        if dialect_rounds_n > 0:
            print(f"dialects, {dialect_rounds_n} interleaved rounds of {dialect_duration:g} s per scenario "
                  "(Messages and Responses passthrough streams vs chat passthrough stream):", flush=True)
            messages = Dialect("messages", h.messages_body, h.direct_messages_url, h.direct_messages_headers,
                               h.gateway_messages_url(gw), h.gateway_messages_headers)
            responses = Dialect("responses", h.responses_body, h.direct_responses_url, h.direct_headers,
                                h.gateway_responses_url(gw), h.gateway_headers)
            # An alias whose first hop is healthy, against calling that model directly (same upstream bytes).
            alias = Dialect("alias", h.alias_stream_body, h.direct_url, h.direct_headers, h.gateway_url(gw),
                            h.gateway_headers)
            dialect_rounds(runner, gw, [messages, responses, alias], dialect_rounds_n, dialect_duration)
        time.sleep(SETTLE_SECONDS)
        peak = procstat.sample([gw.pid])
        memory = {"peak_rss_mb": peak.hwm_kb / 1024, "rss_after_mb": peak.rss_kb / 1024,
                  "relay_peak_rss_mb": relay_peak.hwm_kb / 1024}
        print("sign-in on the same gateway (after its memory was read: hashing holds its own):", flush=True)
        runner.signin(gw)
        gw.stop()
        if workers2:
            gw2 = h.gateway(workers=2)
            print("through the gateway (--workers 2, both cores, shared with the load):", flush=True)
            url = h.gateway_url(gw2)
            jc = h.check_for(url, h.json_body, h.gateway_headers)
            sc = h.check_for(url, h.stream_body, h.gateway_headers)
            runner.gateway_calls += 2
            runner.warm(url, h.gateway_headers, jc, sc, gateway=True)
            runner.measure(f"gateway-x2 json c{HIGH}", "gateway-x2", "json", url, h.json_body, h.gateway_headers,
                           jc, HIGH, gw2)
            runner.measure(f"gateway-x2 stream c{HIGH}", "gateway-x2", "stream", url, h.stream_body,
                           h.gateway_headers, sc, HIGH, gw2)
            time.sleep(SETTLE_SECONDS)
            memory["rss_after_mb_x2_max_worker"] = procstat.max_rss_kb(procstat.workers(gw2.pid)) / 1024
            gw2.stop()  # drains the usage queue
        rows = asyncio.run(usage_rows(h.database_url, h.account.user_id))
        derived = derive(runner.rows, memory)
        return {
            **info,
            "relay_duration_s": relay_seconds,
            "relay_client": RELAY_CLIENTS[relay_client],
            "dialect_duration_s": dialect_duration,
            "scenarios": [r.as_dict() for r in runner.rows],
            "derived": derived,
            "targets": judge(derived),
            "usage_logging": {"rows_written": rows, "gateway_calls": runner.gateway_calls,
                              "every_call_logged": rows >= runner.gateway_calls},
            "failures_total": sum(int(r.result.get("failures", 0)) for r in runner.rows),
        }
