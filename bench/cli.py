"""``python -m bench`` (``make bench``) and its modes. Results go to ``bench/results/`` (git-ignored)."""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT_DURATION = 5.0  # seconds per scenario: ~14 scenarios plus warm-ups stay well under four minutes


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description="Measure what the Webrana gateway adds.")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--pricing", action="store_true",
                      help="pricing one call: PriceBook.price per call, in microseconds (no I/O)")
    mode.add_argument("--usage-rows", action="store_true",
                      help="usage logging throughput: rows/s into PostgreSQL through UsageWriter")
    mode.add_argument("--journal-ab", action="store_true",
                      help="the gateway with and without the usage journal, in interleaved rounds (medians)")
    mode.add_argument("--paired", action="store_true",
                      help="journal on/off and Messages/Responses vs chat, each pair measured at the same time on "
                           "the same core (medians of per-round ratios)")
    mode.add_argument("--big-table", action="store_true",
                      help="10 million proxy_requests rows; EXPLAIN ANALYZE of the dashboard's usage queries")
    mode.add_argument("--profile", action="store_true",
                      help="py-spy the gateway under load and list the top costs per call")
    mode.add_argument("--signin", action="store_true",
                      help="sign-in latency only: POST /api/auth/login, 4 people at once (p50/p95)")
    p.add_argument("--duration", type=float, default=DEFAULT_DURATION, help="seconds per scenario (default 5)")
    p.add_argument("--relay-duration", type=float, default=None,
                   help="seconds per scenario through the bare relay (default: --duration; at least 3)")
    p.add_argument("--relay-client", choices=("upstream", "aiohttp"), default="upstream",
                   help="the bare relay's upstream client: the gateway's own (default) or aiohttp's")
    p.add_argument("--dialect-rounds", type=int, default=3,
                   help="interleaved rounds of the Messages vs chat passthrough stream rows (default 3; 0: none)")
    p.add_argument("--dialect-duration", type=float, default=2.0,
                   help="seconds per scenario in the dialect rounds (default 2)")
    p.add_argument("--journal-rounds", type=int, default=3,
                   help="--journal-ab: rounds, each measuring journal on and off (default 3)")
    p.add_argument("--paired-rounds", type=int, default=5, help="--paired: rounds per pair (default 5)")
    p.add_argument("--paired-only", default="", help="--paired: only these pairs (journal,messages,responses)")
    p.add_argument("--python-load", action="store_true", help="use the Python load generator even if wrk exists")
    p.add_argument("--no-workers2", action="store_true", help="skip the --workers 2 scaling scenarios")
    p.add_argument("--rows", type=int, default=10_000_000, help="--big-table: rows to generate (default 10M)")
    p.add_argument("--rate", type=int, default=6_000, help="--usage-rows: rows/s offered (default 6000)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    if args.pricing:
        from bench.pricing import run_pricing

        code = run_pricing()
    elif args.usage_rows:
        from bench.usage_rows import run_usage_rows

        code = run_usage_rows(rate=args.rate, duration=max(args.duration, 5.0))
    elif args.journal_ab:
        from bench.journal_ab import run_journal_ab

        code = run_journal_ab(rounds=args.journal_rounds, duration=args.duration, python_load=args.python_load)
    elif args.paired:
        from bench.paired import run_paired

        code = run_paired(rounds=args.paired_rounds, duration=args.duration, python_load=args.python_load,
                          only=args.paired_only)
    elif args.big_table:
        from bench.big_table import run_big_table

        code = run_big_table(rows=args.rows)
    elif args.profile:
        from bench.profile import run_profile

        code = run_profile(duration=max(args.duration, 8.0), python_load=args.python_load)
    elif args.signin:
        from bench.signin import run_signin_only

        code = run_signin_only(python_load=args.python_load)
    else:
        code = _overhead(args)
    print(f"bench: done in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return code


def _overhead(args: argparse.Namespace) -> int:
    from bench import report
    from bench.harness import RESULTS
    from bench.overhead import run
    from bench.pricing import measure, row

    doc = run(duration=args.duration, python_load=args.python_load, workers2=not args.no_workers2,
              relay_duration=args.relay_duration, relay_client=args.relay_client,
              dialect_rounds_n=args.dialect_rounds, dialect_duration=args.dialect_duration)
    doc["pricing"] = measure()
    print()
    print(report.table(doc))
    print(row(doc["pricing"]))
    stamp = doc["date"].replace(":", "").replace("-", "")[:15]
    json_path = RESULTS / f"bench-{stamp}.json"
    report.write_json(doc, json_path)
    report.write_json(doc, RESULTS / "latest.json")
    png = RESULTS / "latest.png"
    why_not = report.chart(doc, png)
    print(f"\nJSON: {json_path.relative_to(RESULTS.parent.parent)} (and bench/results/latest.json)")
    print(f"chart: {why_not}" if why_not else f"chart: {png.relative_to(RESULTS.parent.parent)}")
    return 0 if doc["failures_total"] == 0 and doc["usage_logging"]["every_call_logged"] else 1
