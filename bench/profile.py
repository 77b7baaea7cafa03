"""``python -m bench --profile``: sample the gateway with py-spy while it is under load, and list what costs.

py-spy (``pip install py-spy``) records the one-worker gateway at concurrency 64, once for non-streamed and
once for streamed chat, in raw (collapsed stack) format. The summary gives, per function, its share of the
gateway's CPU samples ("self": the function itself; "total": it and what it calls) and that share turned into
microseconds per call using the CPU time per call measured from /proc over the same window.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench import procstat
from bench.harness import RESULTS, Harness, session
from bench.overhead import HIGH, WARMUP_SECONDS

SAMPLE_RATE = 200  # samples per second: ~1,500 samples per scenario; each sample pauses the gateway briefly
TOP = 25
FRAME_RE = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::\d+)?\)$")
SITE_MARKERS = ("site-packages/", "lib/python3")


def py_spy() -> str | None:
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def short_file(path: str) -> str:
    for marker in SITE_MARKERS:
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "lib/python3":
                path = "stdlib/" + path.split("/", 1)[-1]
            return path
    root = str(Path(__file__).resolve().parent.parent) + "/"
    return path.removeprefix(root)


def frame_name(frame: str) -> str:
    m = FRAME_RE.match(frame.strip())
    if not m:
        return frame.strip()
    return f"{short_file(m.group('file'))}:{m.group('func')}"


def summarize(raw: str) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    """(samples, self counts, inclusive counts, inclusive counts of our own code by file:function)."""
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        own[frames[-1]] += n
        for name in set(frames):
            inclusive[name] += n
            if name.startswith("webrana_proxy/"):
                ours[name] += n
    return total, own, inclusive, ours


def render(title: str, raw: str, cpu_us_per_call: float) -> str:
    total, own, inclusive, ours = summarize(raw)
    if not total:
        return f"{title}: no samples"

    def block(name: str, counts: Counter[str]) -> list[str]:
        out = [f"  {name}:", f"    {'share':>6} {'us/call':>8}  function"]
        for fn, n in counts.most_common(TOP):
            share = n / total
            out.append(f"    {share * 100:5.1f}% {share * cpu_us_per_call:8.1f}  {fn}")
        return out

    lines = [f"{title}: {total} samples, {cpu_us_per_call:.0f} us of gateway CPU per call"]
    lines += block("self (where the CPU is spent)", own)
    lines += block("total, our code (webrana_proxy, inclusive)", ours)
    lines += block("total, everything (inclusive)", inclusive)
    return "\n".join(lines)


def profile_one(h: Harness, spy: str, name: str, body: bytes, url: str, check_stream: bool,
                duration: float) -> str:
    gw_pid = h.procs[-1].pid
    check = h.check_for(url, body, h.gateway_headers)
    assert check.stream == check_stream
    out = RESULTS / f"profile-{name}.txt"
    svg = RESULTS / f"profile-{name}.svg"
    before = procstat.sample([gw_pid])
    started = time.perf_counter()
    seconds = max(1, int(duration) - 1)
    cores = {h.pinning.load} if h.pinning.load is not None else None

    def pre() -> None:
        if cores:
            os.sched_setaffinity(0, cores)

    # The raw record pauses the process per sample (exact stacks); the flame graph only reads its memory (one
    # tracer may stop a process at a time).
    recorders = [subprocess.Popen([spy, "record", "-p", str(gw_pid), "-r", str(SAMPLE_RATE), "-d", str(seconds),
                                   "-f", fmt, "-o", str(path), *extra],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  preexec_fn=pre)
                 for fmt, path, extra in (("raw", out, []), ("flamegraph", svg, ["--nonblocking"]))]
    result = h.load(url, body, h.gateway_headers, check, concurrency=HIGH, duration=duration)
    for r in recorders:
        _, err = r.communicate(timeout=60)
        if r.returncode != 0:
            print(f"py-spy failed: {err.decode(errors='replace').strip()}", file=sys.stderr)
    wall = time.perf_counter() - started
    after = procstat.sample([gw_pid])
    cpu_us = (after.cpu_seconds - before.cpu_seconds) * 1e6 / max(1, result.calls)
    header = (f"{name}: {result.rate:.0f} checked calls/s at c={HIGH}, {result.failures} failed, gateway busy "
              f"{(after.cpu_seconds - before.cpu_seconds) / wall:.2f} cores (py-spy attached, so a little slower)")
    text = header + "\n" + render(name, out.read_text() if out.exists() else "", cpu_us)
    (RESULTS / f"profile-{name}-top.txt").write_text(text + "\n")
    return text


def run_profile(*, duration: float, python_load: bool) -> int:
    spy = py_spy()
    if spy is None:
        print("py-spy is not installed: .venv/bin/pip install py-spy", file=sys.stderr)
        return 2
    with session(duration=duration, python_load=python_load) as h:
        gw = h.gateway(workers=1)
        url = h.gateway_url(gw)
        jc = h.check_for(url, h.json_body, h.gateway_headers)
        h.load(url, h.json_body, h.gateway_headers, jc, concurrency=HIGH, duration=WARMUP_SECONDS)
        for name, body, stream in (("json", h.json_body, False), ("stream", h.stream_body, True)):
            print(profile_one(h, spy, name, body, url, stream, duration), flush=True)
            print(flush=True)
    print(f"raw stacks and flame graphs: {RESULTS.relative_to(RESULTS.parent.parent)}/profile-*.txt / *.svg")
    return 0
