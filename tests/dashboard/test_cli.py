"""``webrana-dashboard``: --help, one clear line and exit 2 on bad settings, and a real serve process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from tests.dashboard.conftest import SESSION_SECRET, free_port


def _run(env: dict[str, str], *args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "webrana_dashboard", *args], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _env(**extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "PYTHONPATH", "HOME", "LANG")}
    return {**keep, **extra}


def test_help_lists_the_settings() -> None:
    result = _run(_env(), "--help")
    assert result.returncode == 0
    assert "serve" in result.stdout and "WEBRANA_SESSION_SECRET" in result.stdout


def test_bad_config_is_one_line_and_exit_2() -> None:
    result = _run(_env(), "serve")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "WEBRANA_SESSION_SECRET is not set" in result.stderr
    result = _run(_env(WEBRANA_SESSION_SECRET="too-short"), "serve")
    assert result.returncode == 2 and "32 bytes" in result.stderr and "Traceback" not in result.stderr
    result = _run(_env(WEBRANA_SESSION_SECRET=SESSION_SECRET, WEBRANA_DASHBOARD_PORT="99999"), "serve")
    assert result.returncode == 2 and "WEBRANA_DASHBOARD_PORT" in result.stderr


def test_serve_answers_health_and_stops_on_sigterm() -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "webrana_dashboard", "serve"],
                            env=_env(WEBRANA_SESSION_SECRET=SESSION_SECRET, WEBRANA_DASHBOARD_PORT=str(port)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
                    assert resp.status == 200 and b'"ok"' in resp.read()
                    assert "nosniff" in resp.headers["X-Content-Type-Options"]
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert proc.returncode == 0  # a graceful stop on SIGTERM, not death by the signal
