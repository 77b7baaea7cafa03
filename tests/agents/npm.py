"""Real agents installed from npm once per machine, for the tests that run them.

``installed(package, version, binary)`` installs ``package@version`` into a machine-wide cache
(``$XDG_CACHE_HOME/webrana-npm/<package>@<version>``, default ``~/.cache``; ``WEBRANA_NPM_CACHE`` moves it), so
every clone and every parallel test session on the machine shares one copy; a fresh machine installs on first
use. An exclusive file lock makes concurrent sessions wait for one install instead of racing; the install goes
into a temporary folder renamed into place only after the binary ran, so a broken half-install is never reused.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

INSTALL_TIMEOUT = 600  # seconds: the first install downloads the agent's native binary (hundreds of MB)


def cache_root() -> Path:
    explicit = os.environ.get("WEBRANA_NPM_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webrana-npm"


class NpmUnavailable(RuntimeError):
    """npm is missing or the install failed: the message carries the command and its output."""


def _run(cmd: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NpmUnavailable(f"`{' '.join(cmd)}` failed: {exc}") from exc


def installed(package: str, version: str, binary: str) -> Path:
    """The path of ``binary`` (relative to the package folder in ``node_modules``) of ``package@version``,
    installing it first when this machine has no copy yet."""
    npm = shutil.which("npm")
    if npm is None:
        raise NpmUnavailable(f"npm is not on PATH: the agent tests install {package}@{version} with it "
                             "(install Node.js >= 20 and npm)")
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    name = f"{package.replace('/', '+')}@{version}"
    home = root / name
    exe = home / "node_modules" / package / binary
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # held until the with ends: one installer per machine at a time
        if exe.is_file() and os.access(exe, os.X_OK):
            return exe
        staging = root / f"{name}.installing"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
        cmd = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--no-save",
               "--loglevel=error", f"{package}@{version}"]
        done = _run(cmd, staging, INSTALL_TIMEOUT)
        staged = staging / "node_modules" / package / binary
        if done.returncode != 0 or not staged.is_file():
            raise NpmUnavailable(f"`{' '.join(cmd)}` exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        check = _run([str(staged), "--version"], staging, 60)
        if check.returncode != 0 or version not in check.stdout:
            raise NpmUnavailable(f"{staged} --version exited {check.returncode}: {check.stdout}{check.stderr}")
        shutil.rmtree(home, ignore_errors=True)
        staging.rename(home)
        return exe
