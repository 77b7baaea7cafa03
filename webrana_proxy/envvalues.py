"""Reading one typed value from an environment mapping, with one line a person can act on when it is wrong.

Shared by the proxy's and the console's settings modules (each the only reader of ``os.environ`` in its
process); nothing here reads the environment itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


class ConfigError(Exception):
    """A setting is missing or wrong. The message is one line that says what to do."""


def read_int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def read_float(env: Mapping[str, str], name: str, default: float, *, allow_zero: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be {'zero or more' if allow_zero else 'positive'}, got {raw!r}")
    return value


def read_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def read_url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    raw = env.get(name, "").strip() or default
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{name} must be a URL starting with {' or '.join(s + '://' for s in schemes)}, got {raw!r}")
    return raw.rstrip("/")


def read_secret(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set; {hint}")
    return value
