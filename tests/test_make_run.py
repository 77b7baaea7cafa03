"""`make run` from a clean clone brings up Webrana on embedded services and Ctrl-C leaves nothing behind.

Also what the bench and other scripts use directly: ``devstack.services()`` and the dev secrets.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import devstack
from devstack import free_port

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT = 180.0  # cold: initdb, migrations, the admin's Argon2 hash, two processes starting
STOP_TIMEOUT = 60.0
# Everything devstack or the processes read, so the clone starts as on a fresh machine.
STRIPPED_PREFIXES = ("WEBRANA_", "MIDTRANS_", "DATABASE_URL", "REDIS_URL", "MASTER_ENCRYPTION_KEY",
                     "JWT_SECRET", "OPENAI_", "ANTHROPIC_", "GEMINI_", "QWEN_", "PYTHONPATH", "MAKEFLAGS",
                     "MFLAGS", "MAKELEVEL", "VENV")


def fresh_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(STRIPPED_PREFIXES)}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback http URL
            return int(response.status), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, ""
    except (urllib.error.URLError, OSError):
        return 0, ""


def login_status(port: int, email: str, password: str) -> int:
    body = json.dumps({"email": email, "password": password}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/auth/login", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback http URL
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def processes_under(path: Path) -> list[psutil.Process]:
    """Live processes whose command line or working directory lies inside ``path``."""
    needle = str(path)
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid == os.getpid() or proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if needle in " ".join(proc.cmdline()) or proc.cwd().startswith(needle):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for proc in procs:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                out.append(proc)
        except psutil.NoSuchProcess:
            continue
    return out


def kill_all(procs: list[psutil.Process]) -> None:
    for proc in procs:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "webrana"
    subprocess.run(["git", "-c", "safe.directory=*", "clone", "--quiet", "--no-hardlinks", str(REPO),
                    str(target)], check=True, env=fresh_env(), stdin=subprocess.DEVNULL)
    yield target
    kill_all(processes_under(target))
    shutil.rmtree(target, ignore_errors=True)


def log_tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@pytest.mark.slow
def test_make_run_from_a_clean_clone_serves_and_stops_cleanly(clone: Path, tmp_path: Path) -> None:
    env = fresh_env()
    if sys.prefix != sys.base_prefix:
        env["VENV"] = sys.prefix  # reuse this virtualenv as is; a real fresh checkout builds .venv itself
    proxy_port, console_port = free_port(), free_port()
    env["WEBRANA_PROXY_PORT"] = str(proxy_port)
    env["WEBRANA_DASHBOARD_PORT"] = str(console_port)
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(["make", "run"], cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        health = login = (0, "")
        while time.monotonic() < deadline:
            assert make.poll() is None, f"make run exited with {make.returncode}:\n{log_tail(log_path)}"
            health = get(f"http://127.0.0.1:{proxy_port}/health")
            login = get(f"http://127.0.0.1:{console_port}/login")
            if health[0] == 200 and login[0] == 200:
                break
            time.sleep(0.5)
        assert health[0] == 200, f"proxy /health never answered 200:\n{log_tail(log_path)}"
        assert login[0] == 200, f"console /login never answered 200:\n{log_tail(log_path)}"
        assert "<form" in login[1].lower()

        started = psutil.Process(make.pid).children(recursive=True)
        names = {p.name() for p in started}
        assert "postgres" in names, f"no embedded PostgreSQL among {names}"
        assert "redis-server" in names, f"no embedded Redis among {names}"
        secrets_file = clone / ".webrana" / "dev.env"
        assert stat.S_IMODE(secrets_file.stat().st_mode) == 0o600
        dev_env = devstack.parse_env_file(secrets_file.read_text())
        assert set(devstack.SECRET_NAMES) <= set(dev_env)
        # The sign-in the banner promises: the admin with the password from .webrana/dev.env.
        assert login_status(proxy_port, devstack.ADMIN_EMAIL, dev_env["WEBRANA_ADMIN_PASSWORD"]) == 200

        os.killpg(make.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole foreground group
        make.wait(STOP_TIMEOUT)
        psutil.wait_procs(alive(started), timeout=10)
        assert alive(started) == [], f"left behind: {alive(started)}"
        assert processes_under(clone) == []
        output = log_path.read_text(errors="replace")
        assert devstack.ADMIN_EMAIL in output
        assert "Traceback" not in output, log_tail(log_path)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait()
        kill_all(alive(started))


def test_services_start_postgres_and_redis_and_stop_them(tmp_path: Path) -> None:
    with devstack.services(tmp_path, base_env=fresh_env()) as env:
        assert env["DATABASE_URL"].startswith("postgresql://") and env["DATABASE_URL"].endswith("/webrana")
        pg = devstack.Postgres(tmp_path, port=int(env["DATABASE_URL"].rsplit(":", 1)[1].split("/")[0]))
        assert len(pg.psql("SELECT gen_random_uuid()", database="webrana")) == 36
        redis_port = int(env["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
        assert devstack._redis_ping(redis_port)
        started = [p for p in processes_under(tmp_path) if p.name() in {"postgres", "redis-server"}]
        assert {p.name() for p in started} == {"postgres", "redis-server"}
        for name in devstack.SECRET_NAMES:
            assert env[name]
    psutil.wait_procs(alive(started), timeout=10)
    assert alive(started) == []
    assert not devstack.port_open(redis_port)


def test_dev_secrets_are_generated_once_private_and_valid(tmp_path: Path) -> None:
    first = devstack.dev_secrets(tmp_path)
    assert devstack.dev_secrets(tmp_path) == first
    path = tmp_path / ".webrana" / "dev.env"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert set(first) == set(devstack.SECRET_NAMES)
    import base64

    assert len(base64.b64decode(first["MASTER_ENCRYPTION_KEY"], validate=True)) == 32
    assert len(first["JWT_SECRET"]) >= 32
    password = first["WEBRANA_ADMIN_PASSWORD"]
    assert len(password) >= 8 and any(c.isupper() for c in password) and any(c.isdigit() for c in password)
    assert first["MIDTRANS_SERVER_KEY"].startswith("SB-Mid-server-")


def test_given_urls_and_secrets_win_and_start_nothing(tmp_path: Path) -> None:
    given = {"DATABASE_URL": "postgresql://u@127.0.0.1:1/elsewhere", "REDIS_URL": "redis://127.0.0.1:1/3",
             "JWT_SECRET": "x" * 40}
    with devstack.services(tmp_path, base_env=given) as env:
        assert env["DATABASE_URL"] == given["DATABASE_URL"]
        assert env["REDIS_URL"] == given["REDIS_URL"]
        assert env["JWT_SECRET"] == given["JWT_SECRET"]
        assert not (tmp_path / ".webrana" / "pg").exists()
        assert processes_under(tmp_path) == []
