"""Configuration is validated at start with one actionable line, and there is no fallback secret."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from redis.asyncio import ConnectionPool

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
    ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL is not a PostgreSQL URL .* postgresql://"),
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
    assert "cannot connect to PostgreSQL at postgresql://u@127.0.0.1:1/webrana" in proc.stderr


# ------------------------------------------------- DATABASE_URL and REDIS_URL: every form the drivers take

POSTGRES_ACCEPTED = [
    "postgresql://u:pw@127.0.0.1:5432/webrana",
    "postgres://u@db.example.com/webrana",
    "postgresql://user:pass@/webrana?host=/cloudsql/project:asia-southeast2:instance",  # Cloud SQL proxy socket
    "postgresql://user@/webrana?host=/var/run/postgresql&port=5433",
    "postgresql:///webrana",  # no host at all: libpq's default socket
    "postgresql://",
    "postgresql://%2Fvar%2Frun%2Fpostgresql/webrana",  # socket directory percent-encoded as the host
    "postgresql://u@h1:5432,h2:5433/webrana?target_session_attrs=read-write",  # several hosts
    "postgresql://u@h1,h2/webrana?port=5432,5433",
    "postgresql://[::1]:5432/webrana",
    "postgresql://u@[2001:db8::1]/webrana?sslmode=require",
    "postgresql://u:p%40ss%2Fw%3Ard@h:/webrana?application_name=webrana&options=-c%20statement_timeout%3D5s",
    "POSTGRESQL://h/webrana",
]
POSTGRES_REFUSED = [
    "mysql://u@h/webrana",
    "postgresql://u:pw@[::1/webrana",
    "postgresql://h:port/webrana",
    "postgresql://h1,,h2/webrana",
    "postgresql://h/webrana?sslmode=sometimes",
    "postgresql://h/webrana?target_session_attrs=fastest",
    "postgresql://h/webrana?flag",
    "postgresql://u@/webrana?host=/a,/b&port=1,2,3",
]


@pytest.fixture
def asyncpg_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[str], bool]:
    """Whether asyncpg's own connection-URL parser takes ``url`` (with no PG* variables or ~/.pgpass around)."""
    from asyncpg.connect_utils import _parse_connect_dsn_and_args

    for name in [n for n in os.environ if n.startswith("PG")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))

    def parse(url: str) -> bool:
        try:
            _parse_connect_dsn_and_args(
                dsn=url, host=None, port=None, user=None, password=None, passfile=None, database=None, ssl=None,
                service=None, servicefile=None, direct_tls=None, server_settings=None, target_session_attrs=None,
                krbsrvname=None, gsslib=None)
        except (ValueError, IndexError):  # IndexError: asyncpg's own reaction to an empty host list entry
            return False
        return True

    return parse


@pytest.mark.parametrize("url", POSTGRES_ACCEPTED)
def test_every_database_url_form_asyncpg_takes_is_accepted(url: str, asyncpg_parse: Callable[[str], bool]) -> None:
    assert asyncpg_parse(url)
    assert Settings.from_env({**GOOD, "DATABASE_URL": url}).database_url == url


@pytest.mark.parametrize("url", POSTGRES_REFUSED)
def test_database_urls_asyncpg_refuses_are_refused_at_start(url: str, asyncpg_parse: Callable[[str], bool]) -> None:
    assert not asyncpg_parse(url)
    with pytest.raises(ConfigError, match="DATABASE_URL is not a PostgreSQL URL"):
        Settings.from_env({**GOOD, "DATABASE_URL": url})


def test_a_port_no_server_can_listen_on_is_refused() -> None:
    # asyncpg only finds out when it connects; libpq refuses it while parsing, and so do we
    with pytest.raises(ConfigError, match="port is not a number from 1 to 65535"):
        Settings.from_env({**GOOD, "DATABASE_URL": "postgresql://h:99999/webrana"})


REDIS_ACCEPTED = [
    "redis://127.0.0.1:6379/0",
    "redis://:pw@redis.example.com:6380/2",
    "redis://user:pw@h/0?socket_timeout=5",
    "rediss://h:6380/0",
    "redis://",
    "redis://[::1]:6379/0",
    "unix:///run/redis/redis.sock",
    "unix:///run/redis/redis.sock?db=3",
    "unix://:pw@/run/redis/redis.sock?db=0",
    "unix://user@/run/redis/redis.sock?db=0&password=pw",
]
REDIS_REFUSED = [
    "http://h:6379/0",
    "redis:h:6379",
    "redis://h:99999/0",
    "redis://h:port/0",
    "redis://h/0?db=zero",
    "redis://h/0?socket_timeout=soon",
]


@pytest.mark.parametrize("url", REDIS_ACCEPTED)
def test_every_redis_url_form_redis_py_takes_is_accepted(url: str) -> None:
    ConnectionPool.from_url(url)  # redis-py's own reading of it (no connection is made)
    assert Settings.from_env({**GOOD, "REDIS_URL": url}).redis_url == url


@pytest.mark.parametrize("url", REDIS_REFUSED)
def test_redis_urls_redis_py_refuses_are_refused_at_start(url: str) -> None:
    with pytest.raises(ValueError):
        ConnectionPool.from_url(url)
    with pytest.raises(ConfigError, match="REDIS_URL is not a Redis URL"):
        Settings.from_env({**GOOD, "REDIS_URL": url})


def test_a_unix_redis_url_without_a_socket_path_is_refused() -> None:
    with pytest.raises(ConfigError, match="names the socket's path"):
        Settings.from_env({**GOOD, "REDIS_URL": "unix://"})


SECRET = "Pw-S3cr3t"
LEAKY = {  # each is refused; each holds SECRET somewhere a careless message would show it
    "DATABASE_URL": [
        f"mysql://u:{SECRET}@h/webrana",
        f"postgresql://u:{SECRET}@[::1/webrana",
        f"postgresql://u:{SECRET}@h:port/webrana",
        f"postgresql://u:{SECRET}@h/webrana?flag",
        f"postgresql://u:{SECRET}/webrana",  # the "@" went missing: the password reads as a port
        f"postgresql://u:{SECRET}@@h/webrana?sslmode=x",
        f"postgresql://u:{SECRET.replace('-', '%2D')}@h,,h/webrana",
        f"postgresql://u@h/webrana?password={SECRET}&sslmode=x",
        f"postgresql://u:a/{SECRET}@h:1:2/webrana",  # an unencoded "/" in the password
        f"u:{SECRET}@h/webrana",
    ],
    "REDIS_URL": [
        f"redis://:{SECRET}@h:port/0",
        f"redis://:{SECRET}",
        f"redis://u:{SECRET}@h/0?db=zero",
        f"unix://:{SECRET}@",
        f"unix:///run/redis.sock?password={SECRET}&db=zero",
        f"http://:{SECRET}@h/0",
    ],
    "WEBRANA_API_URL": [f"ftp://u:{SECRET}@h/", f"http://u:{SECRET}@[::1/"],
    "OPENAI_BASE_URL": [f"https://u:{SECRET}@[bad/v1"],
}


@pytest.mark.parametrize(("name", "url"), [(n, u) for n, urls in LEAKY.items() for u in urls])
def test_a_refused_url_is_shown_with_its_password_masked(name: str, url: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**GOOD, name: url})
    message = str(info.value)
    assert message.startswith(name) and "***" in message, message
    assert "S3cr3t" not in message and "\n" not in message, message


def test_no_settings_error_shows_the_database_or_redis_password() -> None:
    env = {**GOOD, "DATABASE_URL": f"postgresql://u:{SECRET}@db/webrana", "REDIS_URL": f"redis://:{SECRET}@r/0"}
    changes: list[dict[str, str]] = [
        {"MASTER_ENCRYPTION_KEY": ""}, {"JWT_SECRET": "short"}, {"WEBRANA_PROXY_PORT": "x"},
        {"WEBRANA_TRUSTED_PROXIES": "nope"}, {"WEBRANA_LOG_LEVEL": "loud"}, {"MIDTRANS_SERVER_KEY": ""},
        {"WEBRANA_API_URL": "ftp://x"}, {"DATABASE_URL": f"postgresql://u:{SECRET}@db:x/webrana"},
        {"REDIS_URL": f"redis://:{SECRET}@r:x/0"},
    ]
    for change in changes:
        with pytest.raises(ConfigError) as info:
            Settings.from_env({**env, **change})
        assert SECRET not in str(info.value), (change, str(info.value))


def test_the_cli_never_prints_the_database_password() -> None:
    env = {k: v for k, v in os.environ.items() if k not in GOOD}
    env.update({**GOOD, "DATABASE_URL": f"postgresql://u:{SECRET}@127.0.0.1:port/webrana"})
    proc = subprocess.run([sys.executable, "-m", "webrana_proxy", "migrate"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "DATABASE_URL is not a PostgreSQL URL" in proc.stderr and "u:***@127.0.0.1:port" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout
    # and when the URL is fine but the server refuses, the message names it masked too
    env["DATABASE_URL"] = f"postgresql://u:{SECRET}@127.0.0.1:1/webrana"
    proc = subprocess.run([sys.executable, "-m", "webrana_proxy", "migrate"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and "postgresql://u:***@127.0.0.1:1/webrana" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout


def test_the_usage_journal_dir_and_fsync_interval(tmp_path: Path) -> None:
    s = Settings.from_env(GOOD)
    assert (s.usage_journal_dir, s.usage_fsync_interval) == (".webrana/journal", 0.1)
    assert Settings.from_env({**GOOD, "WEBRANA_USAGE_SPILL_DIR": "/old/spill"}).usage_journal_dir == "/old/spill"
    both = {**GOOD, "WEBRANA_USAGE_SPILL_DIR": "/old/spill", "WEBRANA_USAGE_JOURNAL_DIR": "/var/lib/j"}
    assert Settings.from_env(both).usage_journal_dir == "/var/lib/j"
    assert Settings.from_env({**GOOD, "WEBRANA_USAGE_JOURNAL_DIR": "off"}).usage_journal_dir == ""
    assert Settings.from_env({**GOOD, "WEBRANA_USAGE_FSYNC_INTERVAL": "0.5"}).usage_fsync_interval == 0.5
    a_file = tmp_path / "journal"
    a_file.write_text("")
    with pytest.raises(ConfigError, match="is a file, not a directory"):
        Settings.from_env({**GOOD, "WEBRANA_USAGE_JOURNAL_DIR": str(a_file)})
    with pytest.raises(ConfigError, match="WEBRANA_USAGE_FSYNC_INTERVAL must be positive"):
        Settings.from_env({**GOOD, "WEBRANA_USAGE_FSYNC_INTERVAL": "0"})
