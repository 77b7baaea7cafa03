"""Reading one typed value from an environment mapping, with one line a person can act on when it is wrong.

Shared by the proxy's and the console's settings modules (each the only reader of ``os.environ`` in its
process); nothing here reads the environment itself. Connection URLs are accepted in every form their driver
takes (asyncpg for PostgreSQL, redis-py for Redis), and a URL in a message always has its passwords masked
(over-masking, e.g. a query value holding an ``@``, is preferred to any chance of showing one).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, unquote, urlsplit

from redis.connection import parse_url as parse_redis_url

POSTGRES_SCHEMES = ("postgresql", "postgres")
# the values asyncpg accepts (libpq's)
SSL_MODES = frozenset({"disable", "allow", "prefer", "require", "verify-ca", "verify-full"})
SESSION_ATTRS = frozenset({"any", "primary", "standby", "prefer-standby", "read-write", "read-only"})
# a query parameter whose value is a secret: password=, sslpassword=, ...
_SECRET_PARAM = re.compile(r"((?:^|[?&;\s])[^=&;\s]*pass[^=&;\s]*=)([^&;\s]*)", re.IGNORECASE)
_IPV6_HOSTSPEC = re.compile(r"\[([^\]]+)\](?::([0-9]+))?")  # asyncpg matches a prefix, so do we


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


def _masked(raw: str) -> tuple[str, list[str]]:
    """``raw`` with its secrets replaced by ``***``, and the secrets it hid. Pure string work, so it is safe on
    values no URL parser accepts."""
    scheme, sep, rest = raw.partition("://")
    if not sep:
        scheme, rest = "", raw
    hidden: list[str] = []
    at = rest.rfind("@")
    if at >= 0:
        # from the first ":" to the last "@": a password with an unencoded "@", "/" or "?" is hidden whole
        user, colon, password = rest[:at].partition(":")
        if colon:
            hidden.append(password)
            rest = f"{user}:***{rest[at:]}"
    else:
        # no user information: a "port" that is not a number may be a password whose "@" went missing
        ends = [i for i in (rest.find("/"), rest.find("?")) if i >= 0]
        authority, tail = rest[:min(ends, default=len(rest))], rest[min(ends, default=len(rest)):]
        specs = []
        for spec in authority.split(","):
            close = spec.find("]") + 1 if spec.startswith("[") else 0
            host, colon, port = spec[close:].partition(":")
            if colon and port and not port.isdigit():
                hidden.append(port)
                spec = f"{spec[:close]}{host}:***"
            specs.append(spec)
        rest = ",".join(specs) + tail
    hidden += [m.group(2) for m in _SECRET_PARAM.finditer(rest)]
    return scheme + sep + _SECRET_PARAM.sub(r"\1***", rest), [h for h in hidden if h]


def mask_url(raw: str) -> str:
    """``raw`` with every password replaced by ``***``: the one in the user information, any ``password=``-like
    query parameter, and a non-numeric "port" where the ``@`` is missing (``postgresql://user:secret/db``)."""
    return _masked(raw)[0]


def _url_error(name: str, raw: str, problem: str) -> ConfigError:
    """One line naming the variable, what is wrong and an example, with the value masked: no secret of ``raw``
    appears in it, not even inside the parser's own words for the problem."""
    masked, hidden = _masked(raw)
    for piece in hidden:
        for form in {piece, unquote(piece)}:
            if form:
                problem = problem.replace(form, "***")
    return ConfigError(f"{name} {problem}; got {masked!r}")


def read_url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    raw = env.get(name, "").strip() or default
    try:
        parts = urlsplit(raw)
        ok = parts.scheme in schemes and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise _url_error(name, raw, f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return raw.rstrip("/")


def _port_problem(text: str) -> str | None:
    if not text.isdigit() or not 0 < int(text) < 65536:
        return "a port is not a number from 1 to 65535"
    return None


def _hostlist_problem(hostlist: str, *, unquoted: bool) -> tuple[str | None, int]:
    """Why asyncpg would refuse a host list (``h1:5432,[::1]:5433,/socket/dir``), and how many hosts it names."""
    specs = hostlist.split(",")
    for spec in specs:
        if not spec:
            return "the host list has an empty entry", len(specs)
        if spec.startswith("/"):  # a unix socket directory (or socket file)
            continue
        if spec.startswith("["):
            m = _IPV6_HOSTSPEC.match(spec)
            if m is None:
                return f"{spec!r} is not an IPv6 address in brackets, like [::1]:5432", len(specs)
            port = m.group(2) or ""
        else:
            port = spec.partition(":")[2]
        if port and (problem := _port_problem(port if unquoted else unquote(port))) is not None:
            return problem, len(specs)
    return None, len(specs)


def postgres_url_problem(url: str) -> str | None:
    """Why asyncpg (like libpq) would not take ``url`` as a connection URL, or None. Accepts what they accept:
    postgres:// or postgresql://, no host (the default unix socket), a host list ``h1:5432,h2:5432``, IPv6 in
    brackets, a socket directory percent-encoded as the host or in ``?host=``, ports in ``?port=``, and any
    other query parameter (sent as a server setting). Reads nothing but the string."""
    try:
        parts = urlsplit(url)
        query = {k: v[-1] for k, v in parse_qs(parts.query, strict_parsing=True).items()} if parts.query else {}
    except ValueError as exc:
        return str(exc)
    if parts.scheme not in POSTGRES_SCHEMES:
        return "it must start with postgresql:// or postgres://"
    if query.get("sslmode", "disable") not in SSL_MODES:
        return f"sslmode must be one of {', '.join(sorted(SSL_MODES))}"
    if query.get("target_session_attrs", "any") not in SESSION_ATTRS:
        return f"target_session_attrs must be one of {', '.join(sorted(SESSION_ATTRS))}"
    hostspec = parts.netloc.partition("@")[2] if "@" in parts.netloc else parts.netloc
    if hostspec:  # hosts and ports from the URL's authority; ?host= and ?port= are then ignored, as asyncpg does
        return _hostlist_problem(hostspec, unquoted=False)[0]
    ports = [p.strip() for p in query["port"].split(",")] if query.get("port") else []
    for port in ports:
        if (problem := _port_problem(port)) is not None:
            return f"in ?port=, {problem}"
    if query.get("host"):
        problem, hosts = _hostlist_problem(query["host"], unquoted=True)
        if problem is not None:
            return problem
        if len(ports) > 1 and len(ports) != hosts:
            return f"{len(ports)} ports in ?port= for {hosts} hosts in ?host="
    return None


def redis_url_problem(url: str) -> str | None:
    """Why redis-py would not take ``url``, or None: its own URL parser decides (redis://, rediss://, unix://);
    a unix:// URL must also name its socket."""
    try:
        parse_redis_url(url)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        parts = urlsplit(url)
    except ValueError as exc:
        return str(exc).rstrip(".")
    if parts.scheme.lower() == "unix" and not parts.path.strip("/"):
        return "a unix:// URL names the socket's path, e.g. unix:///run/redis/redis.sock?db=0"
    return None


def read_postgres_url(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    problem = postgres_url_problem(raw)
    if problem is not None:
        raise _url_error(name, raw, f"is not a PostgreSQL URL asyncpg can use ({problem}); e.g. "
                         "postgresql://user:pass@host:5432/webrana or, through a unix socket, "
                         "postgresql://user:pass@/webrana?host=/cloudsql/project:region:instance")
    return raw


def read_redis_url(env: Mapping[str, str], name: str) -> str:
    raw = env.get(name, "").strip()
    problem = redis_url_problem(raw)
    if problem is not None:
        raise _url_error(name, raw, f"is not a Redis URL redis-py can use ({problem}); e.g. "
                         "redis://:pass@host:6379/0, rediss://host:6380/0 or unix:///run/redis/redis.sock?db=0")
    return raw


def read_secret(env: Mapping[str, str], name: str, hint: str) -> str:
    value = env.get(name, "")
    if not value:
        raise ConfigError(f"{name} is not set; {hint}")
    return value


SMTP_SCHEMES = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}


@dataclass(frozen=True, slots=True)
class SmtpUrl:
    """Where the mail job sends: ``security`` is plain (smtp://), starttls (smtp+starttls://) or tls (smtps://)."""

    security: str
    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    def masked(self) -> str:
        scheme = next(s for s, (mode, _) in SMTP_SCHEMES.items() if mode == self.security)
        user = f"{self.username}:***@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def read_smtp_url(env: Mapping[str, str], name: str) -> SmtpUrl | None:
    """``smtp://``, ``smtp+starttls://`` or ``smtps://``, with ``user:pass@`` (percent-encoded) when the server
    asks for a login; the port defaults to 25, 587 or 465. Empty: ``None`` (mail is off)."""
    raw = env.get(name, "").strip()
    if not raw:
        return None
    example = "e.g. smtp+starttls://user:pass@smtp.example.com:587, smtps://user:pass@host:465 or smtp://host:25"
    try:
        parts = urlsplit(raw)
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise _url_error(name, raw, f"is not a valid SMTP URL; {example}") from None
    scheme = parts.scheme.lower()
    if scheme not in SMTP_SCHEMES:
        raise _url_error(name, raw, f"must start with smtp://, smtp+starttls:// or smtps://; {example}")
    if not host:
        raise _url_error(name, raw, f"names no host; {example}")
    if parts.path.strip("/") or parts.query or parts.fragment:
        raise _url_error(name, raw, f"must be only scheme, login, host and port; {example}")
    security, default_port = SMTP_SCHEMES[scheme]
    return SmtpUrl(security, host, port or default_port, unquote(parts.username or ""),
                   unquote(parts.password or ""))
