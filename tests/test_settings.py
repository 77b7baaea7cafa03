"""Configuration is validated at start with one actionable line, and there is no fallback secret."""

from __future__ import annotations

import base64
import os
import subprocess
import sys

import pytest

from webrana_proxy.envvalues import ConfigError
from webrana_proxy.settings import Settings

GOOD = {
    "DATABASE_URL": "postgresql://u@127.0.0.1:5432/webrana",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "MASTER_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
    "JWT_SECRET": "x" * 40,
    "MIDTRANS_SERVER_KEY": "SB-Mid-server-abc",
    "MIDTRANS_CLIENT_KEY": "SB-Mid-client-abc",
}


def test_good_environment_gives_defaults() -> None:
    s = Settings.from_env(GOOD)
    assert (s.proxy_host, s.proxy_port, s.dashboard_port) == ("127.0.0.1", 8080, 8081)
    assert s.ip_rate_limit == 100 and s.api_body_limit == 1 << 20 and s.gateway_body_limit == 10 << 20
    assert s.midtrans_snap_base_url == "https://app.sandbox.midtrans.com/snap/v1"


@pytest.mark.parametrize(("change", "needle"), [
    ({"MASTER_ENCRYPTION_KEY": base64.b64encode(b"short").decode()}, "exactly 32 bytes"),
    ({"MASTER_ENCRYPTION_KEY": "%%%not-base64"}, "not valid base64"),
    ({"MASTER_ENCRYPTION_KEY": ""}, "MASTER_ENCRYPTION_KEY is not set"),
    ({"JWT_SECRET": ""}, "JWT_SECRET is not set"),
    ({"JWT_SECRET": "too-short"}, "shorter than 32 bytes"),
    ({"DATABASE_URL": ""}, "DATABASE_URL is not set"),
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL must be a URL"),
    ({"WEBRANA_PROXY_PORT": "eighty"}, "whole number"),
    ({"WEBRANA_TRUSTED_PROXIES": "10.0.0.0/99"}, "invalid CIDR"),
    ({"MIDTRANS_SERVER_KEY": ""}, "MIDTRANS_SERVER_KEY is not set"),
])
def test_bad_values_are_named_with_a_fix(change: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle) as info:
        Settings.from_env({**GOOD, **change})
    assert "\n" not in str(info.value)


def test_cli_prints_one_line_and_no_traceback() -> None:
    env = {k: v for k, v in os.environ.items() if k not in GOOD}
    env.update({**GOOD, "MASTER_ENCRYPTION_KEY": base64.b64encode(b"x" * 16).decode()})
    proc = subprocess.run([sys.executable, "-m", "webrana_proxy", "migrate"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "exactly 32 bytes" in proc.stderr and "generate one" in proc.stderr


def test_unreachable_database_names_the_host() -> None:
    env = {k: v for k, v in os.environ.items() if k not in GOOD}
    env.update({**GOOD, "DATABASE_URL": "postgresql://u@127.0.0.1:1/webrana"})
    proc = subprocess.run([sys.executable, "-m", "webrana_proxy", "migrate"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "cannot connect to PostgreSQL at 127.0.0.1:1/webrana" in proc.stderr
