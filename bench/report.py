"""The bench's output: a table on the terminal, a JSON file and a PNG chart under ``bench/results/``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson


def table(doc: dict[str, Any]) -> str:
    lines = [
        f"Webrana bench  {doc['date']}  {doc['machine']['cpu']} x{doc['machine']['cores']}  "
        f"Python {doc['machine']['python']}",
        f"load generator: {doc['load_generator']}",
        f"pinning: {doc['pinning']}",
        f"load average at start: {doc.get('loadavg_at_start', '-')} (busy columns are in cores; 'machine' counts "
        "every process, other users' included)",
        "cpu ms/call and busy: the process under test (the gateway, or the bare relay on the relay rows)",
        f"bare relay: {doc.get('relay_client', '-')}",
        "",
        f"{'scenario':<26} {'ok/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'ok':>7} {'failed':>6} "
        f"{'cpu ms/call':>14} {'busy':>7} {'up busy':>7} {'machine':>7}",
    ]
    for s in doc["scenarios"]:
        cpu = f"{s['cpu_ms_per_call']:.3f}" if s.get("cpu_ms_per_call") is not None else "-"
        busy = f"{s['gateway_busy']:.2f}" if s.get("gateway_busy") is not None else "-"
        up = f"{s['upstream_busy']:.2f}" if s.get("upstream_busy") is not None else "-"
        up += f" {s['machine_busy']:7.2f}" if s.get("machine_busy") is not None else f" {'-':>7}"
        if s["kind"] == "ttft":
            lines.append(f"{s['name']:<26} {'ttft':>9} {s['ttft_p50_ms']:8.3f} {'':>8} {s['ttft_p99_ms']:8.3f} "
                         f"{s['ok']:7d} {s['failures']:6d} {cpu:>14} {busy:>7} {up:>15}")
        else:
            lines.append(f"{s['name']:<26} {s['rate']:9.1f} {s['p50_ms']:8.3f} {s['p90_ms']:8.3f} "
                         f"{s['p99_ms']:8.3f} {s['ok']:7d} {s['failures']:6d} {cpu:>14} {busy:>7} {up:>15}")
    lines += ["", f"{'target':<48} {'goal':>10} {'measured':>10}  result"]
    for t in doc["targets"]:
        value = "-" if t["value"] is None else f"{t['value']:.3f}"
        verdict = "n/a" if t["pass"] is None else ("PASS" if t["pass"] else "MISS")
        lines.append(f"{t['label']:<48} {t['target']:>10} {value:>10}  {verdict}")
    d = doc["derived"]
    lines += floor_lines(d)
    lines += dialect_lines(d)
    lines += [
        "",
        f"gateway CPU per call: {d.get('cpu_ms_per_call_json', 0):.3f} ms (non-streamed), "
        f"{d.get('cpu_ms_per_call_stream', 0):.3f} ms (stream); peak RSS {d.get('peak_rss_mb', 0):.1f} MB, "
        f"after the run {d.get('rss_after_mb', 0):.1f} MB",
    ]
    u = doc.get("usage_logging")
    if u:
        lines.append(f"usage rows written: {u['rows_written']} for {u['gateway_calls']} gateway calls "
                     f"({'every call logged' if u['every_call_logged'] else 'ROWS MISSING'})")
    lines.append(f"failed calls, all scenarios: {doc['failures_total']}")
    return "\n".join(lines)


def floor_lines(d: dict[str, Any]) -> list[str]:
    """The two derived lines: what the bare relay adds to direct, and what the features add on top of it."""
    if "relay_json_c64_rate" not in d:
        return []
    return [
        "",
        f"relay adds (the floor):              json c1 p50 +{d['relay_added_json_c1_p50_ms']:.3f} ms, "
        f"stream c1 p50 +{d['relay_added_stream_c1_p50_ms']:.3f} ms; c64 {d['relay_json_c64_rate']:,.0f} calls/s, "
        f"{d['relay_stream_c64_rate']:,.0f} streams/s; relay CPU {d['relay_cpu_ms_per_call_json']:.3f} / "
        f"{d['relay_cpu_ms_per_call_stream']:.3f} ms per call (json / stream, c64)",
        f"features add on top of the relay:    json c1 p50 +{d['features_added_json_c1_p50_ms']:.3f} ms, "
        f"stream c1 p50 +{d['features_added_stream_c1_p50_ms']:.3f} ms; c64 throughput "
        f"x{d['gateway_over_relay_json_c64_rate']:.2f} json, x{d['gateway_over_relay_stream_c64_rate']:.2f} stream "
        f"(+{d['features_added_json_c64_ms_per_call'] * 1000:.0f} / "
        f"+{d['features_added_stream_c64_ms_per_call'] * 1000:.0f} us per call); CPU "
        f"+{d['features_cpu_ms_per_call_json']:.3f} / +{d['features_cpu_ms_per_call_stream']:.3f} ms per call",
    ]


def dialect_lines(d: dict[str, Any]) -> list[str]:
    """Each dialect's passthrough stream against chat's: medians over the interleaved rounds."""
    if "chat_added_stream_c1_p50_ms_median" not in d:
        return []
    out = ["", f"dialect rows, medians of {d['dialect_rounds']:.0f} interleaved rounds (stream, added c1 p50 / "
               "gateway CPU per call at c64):",
           f"  chat passthrough:      +{d['chat_added_stream_c1_p50_ms_median']:.3f} ms / "
           f"{d['chat_cpu_ms_per_call_stream_c64_median']:.3f} ms"]
    for name in ("messages", "responses"):
        if f"{name}_added_stream_c1_p50_ms_median" in d:
            added, cpu = d[f"{name}_over_chat_added_stream_c1_p50"], d[f"{name}_over_chat_cpu_stream_c64"]
            out.append(f"  {name + ' passthrough:':<22} +{d[f'{name}_added_stream_c1_p50_ms_median']:.3f} ms / "
                       f"{d[f'{name}_cpu_ms_per_call_stream_c64_median']:.3f} ms  (x{added:.2f} / x{cpu:.2f} of "
                       "chat, median of the per-round ratios)")
    return out


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))


def chart(doc: dict[str, Any], path: Path) -> str | None:
    """Latency percentiles (c=1) and throughput (c=64): direct, bare relay, gateway. Returns why not, or None."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib); no chart drawn"
    by = {s["name"]: s for s in doc["scenarios"]}
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    groups = [("json c1", "json"), ("stream c1", "stream")]
    width = 0.18
    for i, (key, _label) in enumerate(groups):
        for j, (target, color) in enumerate((("direct", "#9aa5b1"), ("relay", "#e39b3b"), ("gateway", "#2f6fde"))):
            s = by.get(f"{target} {key}")
            if not s:
                continue
            for k, pct in enumerate(("p50_ms", "p90_ms", "p99_ms")):
                x = i * 2.0 + k * 0.6 + (j - 1) * width
                ax1.bar(x, s[pct], width, color=color, label=target if (i, k) == (0, 0) else None)
                ax1.text(x, s[pct], f"{s[pct]:.2f}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax1.set_xticks([i * 2.0 + k * 0.6 for i in range(len(groups)) for k in range(3)],
                   [f"{g[1]}\n{p}" for g in groups for p in ("p50", "p90", "p99")], fontsize=8)
    ax1.set_ylabel("latency (ms)")
    ax1.set_title("latency, one call at a time (c=1)")
    ax1.legend()
    bars = [(n, by[n]["rate"]) for n in ("direct json c64", "relay json c64", "gateway json c64",
                                         "gateway-x2 json c64", "direct stream c64", "relay stream c64",
                                         "gateway stream c64", "gateway-x2 stream c64")
            if n in by]
    palette = {"direct": "#9aa5b1", "relay": "#e39b3b", "gateway": "#2f6fde", "gateway-x2": "#173f8a"}
    colors = [palette[n.split()[0]] for n, _ in bars]
    ax2.bar(range(len(bars)), [v for _, v in bars], color=colors)
    for i, (_, v) in enumerate(bars):
        ax2.text(i, v, f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    ax2.set_xticks(range(len(bars)), [n.replace(" c64", "").replace(" ", "\n") for n, _ in bars], fontsize=8)
    ax2.set_ylabel("checked calls / s")
    ax2.set_title("throughput at concurrency 64")
    fig.suptitle(f"Webrana gateway vs bare aiohttp relay vs fake upstream, {doc['date'][:10]}, "
                 f"{doc['load_generator']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None
