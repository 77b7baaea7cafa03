"""``python -m bench --paired [--paired-rounds 5]``: A/B comparisons run at the same time, on the same core.

The interleaved rounds of ``--journal-ab`` and of the dialect rows compare scenarios measured one after the other;
this VM's speed moves 20-30% between neighbouring runs, and more when its host is busy, which drowns a 3% effect.
Here the two sides run at once: two one-worker gateways pinned to the same core, each driven by its own load
generator (on the load core) at the same concurrency. Whatever the host does, it does to both; the core's time
is shared fairly, so at c=64 the side that costs more CPU per call serves fewer calls, and the ratio of calls/s
(and of CPU per call, from /proc, over the same window) is the ratio of their costs. At c=1 the two cannot run at once
(on one core each waits for the other's time slices; on two cores the core decides, by as much as 1 ms here), so
each is driven alone in one-second slices in mirrored order (A B B A), both on the gateway core, and their added
latencies (median of the slices' p50s minus the fake's own, measured right before) are compared.

Pairs:
- journal: the same gateway with the usage journal on and off (issue 17: calls/s within 3%, c=1 added latency
  within 0.03 ms), json and stream;
- alias: a stream through a ``wbr/`` alias against the same stream to the alias's model (issue 16: calls/s at
  least 95%, c=1 added latency at most 0.05 ms more);
- messages / responses: a Messages (or Responses) passthrough stream on one gateway against a chat passthrough
  stream on the other (issue 12: added latency and CPU per call within 10% of chat's).
Every round starts both gateways afresh and swaps which one is started first; every other round the two sides
take each other's place (gateway, load generator, warm-up order: a journal pair swaps which gateway has the
journal), so whatever favours a position cancels out. Medians of per-round ratios.
"""

from __future__ import annotations

import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from bench import procstat, stack
from bench.harness import RESULTS, Harness, session
from bench.loadgen import Check, LoadResult
from bench.overhead import HIGH, WARMUP_SECONDS

JOURNAL_RATE_TOLERANCE = 0.03  # issue 17: calls/s within 3%
JOURNAL_LATENCY_TOLERANCE_MS = 0.03  # issue 17: c=1 added latency within 0.03 ms
DIALECT_SLACK = 1.10  # issue 12: within 10% of the chat passthrough's added latency and CPU per call
ALIAS_RATE_FLOOR = 0.95  # issue 16: an alias's stream calls/s at c=64 at least 95% of its model's
ALIAS_LATENCY_SLACK_MS = 0.05  # issue 16: and its c=1 added latency at most 0.05 ms more


@dataclass(frozen=True)
class Side:
    """What one load generator sends: a body to a URL (direct, for the fake's own latency; or a gateway's)."""

    name: str
    body: bytes
    direct_url: str
    direct_headers: dict[str, str]
    path: str  # the gateway route, e.g. /v1/chat/completions
    gateway_headers: dict[str, str]


@dataclass
class Measured:
    load: LoadResult
    cpu_ms_per_call: float


def _sides(h: Harness) -> dict[str, Side]:
    chat = "/v1/chat/completions"
    return {
        "chat-json": Side("chat-json", h.json_body, h.direct_url, h.direct_headers, chat, h.gateway_headers),
        "chat": Side("chat", h.stream_body, h.direct_url, h.direct_headers, chat, h.gateway_headers),
        "alias": Side("alias", h.alias_stream_body, h.direct_url, h.direct_headers, chat, h.gateway_headers),
        "messages": Side("messages", h.messages_body, h.direct_messages_url, h.direct_messages_headers,
                         "/v1/messages?beta=true", h.gateway_messages_headers),
        "responses": Side("responses", h.responses_body, h.direct_responses_url, h.direct_headers,
                          "/v1/responses", h.gateway_headers),
    }


def _url(gw: stack.Proc, side: Side) -> str:
    return f"http://127.0.0.1:{gw.port}{side.path}"


Job = tuple[stack.Proc, str, Side, Check, dict[str, str]]
C1_SLICES = 4  # one-second c=1 slices per side and round, in mirrored order


def _load(h: Harness, jobs: list[Job], i: int, concurrency: int, duration: float) -> LoadResult:
    _, url, side, check, headers = jobs[i]
    script_dir = h.logs / f"paired-{i}"
    script_dir.mkdir(exist_ok=True)
    if h.wrk:
        from bench import loadgen

        return loadgen.run_wrk(h.wrk, url, side.body, headers, check, concurrency=concurrency,
                               duration=duration, script_dir=script_dir, core=h.pinning.load)
    return h.load(url, side.body, headers, check, concurrency=concurrency, duration=duration)


def _together(h: Harness, jobs: list[Job], concurrency: int, duration: float) -> list[Measured]:
    """Run every job's load at once (one load generator each, all on the load core); CPU per call of each
    job's gateway over the same window."""
    before = [procstat.sample([gw.pid]) for gw, *_ in jobs]
    with ThreadPoolExecutor(len(jobs)) as pool:
        loads = list(pool.map(lambda i: _load(h, jobs, i, concurrency, duration), range(len(jobs))))
    out = []
    for (gw, *_), b, load in zip(jobs, before, loads, strict=True):
        cpu = procstat.sample([gw.pid]).cpu_seconds - b.cpu_seconds
        out.append(Measured(load, round(cpu * 1000 / load.calls, 4) if load.calls else 0.0))
    return out


def _alternating_c1(h: Harness, jobs: list[Job]) -> list[tuple[float, int]]:
    """Each job alone at c=1 in one-second slices, mirrored order (A B B A ...): per job the median of its
    slices' p50s and its failures. Whatever drifts during the round drifts for both alike."""
    p50s: list[list[float]] = [[] for _ in jobs]
    failed = [0] * len(jobs)
    for k in range(C1_SLICES):
        for i in (range(len(jobs)) if k % 2 == 0 else reversed(range(len(jobs)))):
            load = _load(h, jobs, i, 1, 1.0)
            p50s[i].append(load.p50_ms)
            failed[i] += load.failures
    return [(statistics.median(p), f) for p, f in zip(p50s, failed, strict=True)]


def _start_pair(h: Harness, journals: tuple[bool, bool], first: int) -> tuple[stack.Proc, stack.Proc]:
    """Two gateways on the gateway core (``h.gateway`` pins a one-worker gateway there); ``first`` is started
    first."""
    order = (first, 1 - first)
    procs: dict[int, stack.Proc] = {}
    for i in order:
        procs[i] = h.gateway(workers=1, journal=journals[i])
    return procs[0], procs[1]


def _stop(h: Harness, *gws: stack.Proc) -> None:
    for gw in gws:
        gw.stop()
        h.procs.remove(gw)


def _warm(h: Harness, gw: stack.Proc, side: Side, check: Check) -> None:
    h.load(_url(gw, side), side.body, side.gateway_headers, check, concurrency=HIGH, duration=WARMUP_SECONDS / 2)


def _direct_p50(h: Harness, side: Side, checks: dict[str, Check], duration: float) -> float:
    return h.load(side.direct_url, side.body, side.direct_headers, checks["direct " + side.name], concurrency=1,
                  duration=duration).p50_ms


def _round(h: Harness, gws: tuple[stack.Proc, stack.Proc], sides: tuple[Side, Side], checks: dict[str, Check],
           duration: float) -> dict[str, Any]:
    """Both sides at c=64 together on the gateway core, then each alone at c=1 in alternating slices; the
    fake's own c=1 latency for each side right before."""
    jobs: list[Job] = [(gw, _url(gw, s), s, checks[s.name], s.gateway_headers)
                       for gw, s in zip(gws, sides, strict=True)]
    for gw, s in zip(gws, sides, strict=True):
        _warm(h, gw, s, checks[s.name])
    high = _together(h, jobs, HIGH, duration)
    direct = [_direct_p50(h, s, checks, duration / 2) for s in sides]
    low = _alternating_c1(h, jobs)
    out: dict[str, Any] = {}
    for i, s in enumerate(sides):
        out[f"{i}"] = {"side": s.name, "rate_c64": high[i].load.rate, "cpu_ms_per_call_c64": high[i].cpu_ms_per_call,
                       "failed_c64": high[i].load.failures, "p50_c1_ms": low[i][0],
                       "direct_p50_c1_ms": direct[i], "added_c1_ms": round(low[i][0] - direct[i], 4),
                       "failed_c1": low[i][1]}
    return out


def _checks(h: Harness, sides: dict[str, Side], gw: stack.Proc) -> dict[str, Check]:
    checks: dict[str, Check] = {}
    for s in sides.values():
        checks[s.name] = h.check_for(_url(gw, s), s.body, s.gateway_headers)
        checks["direct " + s.name] = h.check_for(s.direct_url, s.body, s.direct_headers)
    return checks


def run_paired(*, rounds: int, duration: float, python_load: bool, only: str = "") -> int:
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"started": datetime.now(UTC).isoformat(timespec="seconds"), "rounds": rounds,
                               "duration_s": duration, "pairs": {}}
    with session(duration=duration, python_load=python_load) as h:
        sides = _sides(h)
        probe = h.gateway(workers=1)
        try:
            checks = _checks(h, sides, probe)
        finally:
            _stop(h, probe)
        pairs: list[tuple[str, tuple[str, str], tuple[bool, bool]]] = [
            ("journal json", ("chat-json", "chat-json"), (True, False)),
            ("journal stream", ("chat", "chat"), (True, False)),
            ("messages", ("messages", "chat"), (True, True)),
            ("responses", ("responses", "chat"), (True, True)),
            ("alias", ("alias", "chat"), (True, True)),
        ]
        wanted = {w.strip() for w in only.split(",") if w.strip()}
        for title, (a, b), journals in pairs:
            if wanted and title.split()[0] not in wanted:
                continue
            per_round = []
            journal_pair = journals[0] != journals[1]
            for r in range(rounds):
                # Every other round the two take each other's place (gateway, load generator, warm-up order), so
                # nothing about a position favours one of them: same settings swap sides, a journal pair swaps
                # which gateway has the journal.
                swap = r % 2 == 1
                on_off = (journals[1], journals[0]) if swap and journal_pair else journals
                gws = _start_pair(h, on_off, first=r % 2)
                try:
                    order = (sides[b], sides[a]) if swap and not journal_pair else (sides[a], sides[b])
                    got = _round(h, gws, order, checks, duration)
                finally:
                    _stop(h, *gws)
                by_side = {("off", "on")[on_off[int(k)]] if journal_pair else got[k]["side"]: got[k]
                           for k in ("0", "1")}
                per_round.append(by_side)
                print(f"{title} #{r + 1}: " + "; ".join(
                    f"{name} {v['rate_c64']:.0f}/s {v['cpu_ms_per_call_c64']:.3f} ms cpu, c1 +{v['added_c1_ms']:.3f} ms"
                    for name, v in by_side.items()), flush=True)
            results["pairs"][title] = {"rounds": per_round, **_figures(title, per_round)}
            print(_verdict(title, results["pairs"][title]), flush=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (RESULTS / f"paired-{stamp}.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print(f"results: bench/results/paired-{stamp}.json")
    return 0


def _figures(title: str, rounds: list[dict[str, Any]]) -> dict[str, float]:
    a, b = ("on", "off") if title.startswith("journal") else (title, "chat")
    rate = statistics.median(r[a]["rate_c64"] / r[b]["rate_c64"] for r in rounds)
    cpu = statistics.median(r[a]["cpu_ms_per_call_c64"] / r[b]["cpu_ms_per_call_c64"] for r in rounds)
    added_diff = statistics.median(r[a]["added_c1_ms"] - r[b]["added_c1_ms"] for r in rounds)
    added_ratio = statistics.median(r[a]["added_c1_ms"] / r[b]["added_c1_ms"] if r[b]["added_c1_ms"] > 0
                                    else float("inf") for r in rounds)
    return {"rate_ratio_c64": round(rate, 4), "cpu_ratio_c64": round(cpu, 4),
            "added_c1_diff_ms": round(added_diff, 4), "added_c1_ratio": round(added_ratio, 4),
            "added_c1_ms_median": round(statistics.median(r[a]["added_c1_ms"] for r in rounds), 4),
            "reference_added_c1_ms_median": round(statistics.median(r[b]["added_c1_ms"] for r in rounds), 4)}


def _verdict(title: str, f: dict[str, Any]) -> str:
    if title == "alias":
        ok = f["rate_ratio_c64"] >= ALIAS_RATE_FLOOR and f["added_c1_diff_ms"] <= ALIAS_LATENCY_SLACK_MS
        return (f"alias vs its model (chat passthrough stream), medians of per-round figures: calls/s at c64 "
                f"x{f['rate_ratio_c64']:.3f} (CPU per call x{f['cpu_ratio_c64']:.3f}), c1 added latency "
                f"{f['added_c1_diff_ms']:+.3f} ms: {'PASS' if ok else 'MISS'} (>= x0.95, <= +0.05 ms)")
    if title.startswith("journal"):
        ok = abs(1 - f["rate_ratio_c64"]) <= JOURNAL_RATE_TOLERANCE and \
            abs(f["added_c1_diff_ms"]) <= JOURNAL_LATENCY_TOLERANCE_MS
        return (f"{title}, on vs off, medians of per-round figures: calls/s at c64 x{f['rate_ratio_c64']:.3f} "
                f"(CPU per call x{f['cpu_ratio_c64']:.3f}), c1 added latency {f['added_c1_diff_ms']:+.3f} ms: "
                f"{'PASS' if ok else 'MISS'} (within 3% and 0.03 ms)")
    ok = f["cpu_ratio_c64"] <= DIALECT_SLACK and f["added_c1_ratio"] <= DIALECT_SLACK
    return (f"{title} vs chat passthrough stream, medians of per-round figures: CPU per call at c64 "
            f"x{f['cpu_ratio_c64']:.3f} (calls/s x{f['rate_ratio_c64']:.3f}), c1 added latency "
            f"x{f['added_c1_ratio']:.3f} ({f['added_c1_ms_median']:.3f} vs {f['reference_added_c1_ms_median']:.3f} "
            f"ms): {'PASS' if ok else 'MISS'} (within 10%)")
