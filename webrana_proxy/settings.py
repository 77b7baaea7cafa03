"""All configuration, read from the environment in this one module and validated at start.

``Settings.from_env()`` either returns a complete, valid ``Settings`` or raises ``ConfigError`` with one
line a person can act on. The CLI prints that line and exits 2 (no traceback). There is no fallback secret.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from webrana_proxy.envvalues import (
    ConfigError,
    SmtpUrl,
    read_bool,
    read_float,
    read_int,
    read_postgres_url,
    read_redis_url,
    read_secret,
    read_smtp_url,
    read_url,
)
from webrana_proxy.providers.registry import SPECS
from webrana_proxy.providers.spec import ProviderSpec

GENERATE_KEY_HINT = "generate one with: python -c \"import os,base64;print(base64.b64encode(os.urandom(32)).decode())\""

# Named defaults, each with its reason.
DEFAULT_PROXY_PORT = 8080  # the port OpenAI SDK users expect to type in local docs
DEFAULT_DASHBOARD_PORT = 8081  # next to the proxy, so `make run` is easy to remember
DEFAULT_IP_RATE_LIMIT = 100  # requests/minute per client address: the product rule
DEFAULT_API_BODY_LIMIT = 1 << 20  # 1 MiB: management JSON is small
DEFAULT_GATEWAY_BODY_LIMIT = 10 << 20  # 10 MiB: room for base64 images in chat requests
DEFAULT_CONNECT_TIMEOUT = 10.0  # seconds to open a TCP/TLS connection to a provider
DEFAULT_FIRST_BYTE_TIMEOUT = 120.0  # long prompts on big models take this long before the first token
DEFAULT_IDLE_TIMEOUT = 60.0  # a stream silent this long is dead
DEFAULT_CIRCUIT_FAILURES = 5  # failures in a row that open a provider key's circuit breaker
DEFAULT_CIRCUIT_COOLDOWN = 30.0  # seconds an open breaker skips its key before one call probes it
DEFAULT_UPSTREAM_CONNECTIONS = 4096  # sized for thousands of concurrent open streams per process
DEFAULT_USD_TO_IDR = 16_500  # rupiah per US dollar for cost estimates; update in settings, not code
DEFAULT_PPN_PERCENT = 11  # Indonesian VAT
DEFAULT_KEY_CACHE_SIZE = 10_000  # resolved proxy keys kept per process
DEFAULT_KEY_CACHE_TTL = 60.0  # seconds; invalidations arrive by pub/sub well before this
DEFAULT_USAGE_QUEUE_MAX = 100_000  # rows held in memory while PostgreSQL is away, then only in the journal
DEFAULT_USAGE_JOURNAL_DIR = ".webrana/journal"  # each process's usage journal (a volume in the chart)
DEFAULT_USAGE_FSYNC_INTERVAL = 0.1  # seconds between fsyncs of the journal: what a node crash may lose
DEFAULT_SHUTDOWN_GRACE = 30.0  # seconds open streams get to finish on SIGTERM
DEFAULT_KEEPALIVE_TIMEOUT = 75.0  # seconds an idle client connection (or one still sending headers) is kept
DEFAULT_BODY_TIMEOUT = 60.0  # seconds a client has to send its whole request body (slowloris guard)
DEFAULT_READINESS_DELAY = 0.0  # seconds between "not ready" and closing the listener (Kubernetes uses preStop)
DEFAULT_PASSWORD_HASH_CONCURRENCY = 2  # Argon2 runs at once per process: each holds 19 MiB and a core for ~20 ms,
# so 2 keep sign-in p95 far under 200 ms with 4 people signing in at once and cost 38 MiB at most
DEFAULT_PASSWORD_HASH_WAIT = 2.0  # seconds a sign-up or sign-in waits for a hashing slot, then 503 + Retry-After
DEFAULT_SIGNUP_LIMIT = 20  # sign-ups per address (IPv6: per /64) per hour: an office signs up a few people an
# hour; a script can neither farm accounts nor keep the hashing slots busy from one address


def _b64_32(name: str, raw: str) -> bytes:
    try:
        value = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} is not valid base64; {GENERATE_KEY_HINT}") from None
    if len(value) != 32:
        raise ConfigError(f"{name} must decode to exactly 32 bytes (got {len(value)}); {GENERATE_KEY_HINT}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    redis_url: str
    master_key: bytes = field(repr=False)
    master_key_previous: bytes | None = field(repr=False)
    jwt_secret: str = field(repr=False)
    midtrans_server_key: str = field(repr=False)
    midtrans_client_key: str
    midtrans_is_production: bool = False
    midtrans_snap_base_url: str = "https://app.sandbox.midtrans.com/snap/v1"
    midtrans_api_base_url: str = "https://api.sandbox.midtrans.com"
    proxy_host: str = "127.0.0.1"
    proxy_port: int = DEFAULT_PROXY_PORT
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = DEFAULT_DASHBOARD_PORT
    api_url: str = f"http://127.0.0.1:{DEFAULT_PROXY_PORT}"
    console_url: str = f"http://127.0.0.1:{DEFAULT_DASHBOARD_PORT}"
    ip_rate_limit: int = DEFAULT_IP_RATE_LIMIT
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        default_factory=lambda: (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")))
    api_body_limit: int = DEFAULT_API_BODY_LIMIT
    gateway_body_limit: int = DEFAULT_GATEWAY_BODY_LIMIT
    # Upstream base URL per provider id, each from its spec's setting (OPENAI_BASE_URL, ...). Every upstream URL
    # comes from here, never from a request.
    upstream_base_urls: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType({s.id: s.default_base_url for s in SPECS}))
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    first_byte_timeout: float = DEFAULT_FIRST_BYTE_TIMEOUT
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    circuit_failures: int = DEFAULT_CIRCUIT_FAILURES
    circuit_cooldown: float = DEFAULT_CIRCUIT_COOLDOWN
    upstream_connections: int = DEFAULT_UPSTREAM_CONNECTIONS
    usd_to_idr: int = DEFAULT_USD_TO_IDR
    ppn_percent: int = DEFAULT_PPN_PERCENT
    key_cache_size: int = DEFAULT_KEY_CACHE_SIZE
    key_cache_ttl: float = DEFAULT_KEY_CACHE_TTL
    usage_queue_max: int = DEFAULT_USAGE_QUEUE_MAX
    usage_journal_dir: str = DEFAULT_USAGE_JOURNAL_DIR  # empty: no journal ("off", for measurements only)
    usage_fsync_interval: float = DEFAULT_USAGE_FSYNC_INTERVAL
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    readiness_delay: float = DEFAULT_READINESS_DELAY
    keepalive_timeout: float = DEFAULT_KEEPALIVE_TIMEOUT
    workers: int = 1
    # Set by `serve --workers N` (N > 1) for its workers: the group's metric files (prometheus_client reads the
    # same variable); empty: this process exports its own registry.
    metrics_group_dir: str = ""
    migrations_dir: str = ""  # empty: the repository's sql/
    admin_password: str | None = field(default=None, repr=False)
    seller_name: str = "PT Webrana Teknologi Indonesia"
    seller_address: str = "Jakarta, Indonesia"
    seller_npwp: str = ""
    seller_email: str = "billing@webrana.id"
    body_timeout: float = DEFAULT_BODY_TIMEOUT
    log_format: str = "json"
    log_level: str = "INFO"
    dev_mode: bool = False
    background_jobs: bool = True
    demo: bool = False  # the providers are local fakes (`make demo`): the console shows a banner saying so
    # Admins' own upstreams may be on private and loopback addresses (and plain http:// there): an in-cluster vLLM.
    allow_private_upstreams: bool = False
    password_hash_concurrency: int = DEFAULT_PASSWORD_HASH_CONCURRENCY
    password_hash_wait: float = DEFAULT_PASSWORD_HASH_WAIT
    signup_limit: int = DEFAULT_SIGNUP_LIMIT
    smtp: SmtpUrl | None = field(default=None, repr=False)  # None: mail is off (logged as not sent)
    mail_from: str = ""  # the From of every message; required with WEBRANA_SMTP_URL

    def base_url(self, spec: ProviderSpec) -> str:
        """Where a provider is called: its setting, or (an admin's upstream, not a setting) its spec's URL."""
        return self.upstream_base_urls.get(spec.id) or spec.default_base_url

    @property
    def mail_enabled(self) -> bool:
        """Mail goes out (and e-mail verification is enforced) only with an SMTP server configured."""
        return self.smtp is not None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        if not e.get("DATABASE_URL", "").strip():
            raise ConfigError("DATABASE_URL is not set; e.g. postgresql://user:pass@127.0.0.1:5432/webrana "
                              "(`make run` starts an embedded PostgreSQL and sets it for you)")
        if not e.get("REDIS_URL"):
            raise ConfigError("REDIS_URL is not set; e.g. redis://127.0.0.1:6379/0 "
                              "(`make run` starts an embedded Redis and sets it for you)")
        database_url = read_postgres_url(e, "DATABASE_URL")
        redis_url = read_redis_url(e, "REDIS_URL")
        master_key = _b64_32("MASTER_ENCRYPTION_KEY",
                             read_secret(e, "MASTER_ENCRYPTION_KEY", GENERATE_KEY_HINT))
        previous_raw = e.get("MASTER_ENCRYPTION_KEY_PREVIOUS", "").strip()
        previous = _b64_32("MASTER_ENCRYPTION_KEY_PREVIOUS", previous_raw) if previous_raw else None
        jwt_secret = read_secret(e, "JWT_SECRET", "set it to a random string of at least 32 bytes")
        if len(jwt_secret.encode()) < 32:
            raise ConfigError("JWT_SECRET is shorter than 32 bytes; use a random string of at least 32 bytes, "
                              "e.g. python -c \"import secrets;print(secrets.token_urlsafe(48))\"")
        server_key = read_secret(e, "MIDTRANS_SERVER_KEY", "copy it from Midtrans Dashboard > Settings > Access Keys")
        client_key = read_secret(e, "MIDTRANS_CLIENT_KEY", "copy it from Midtrans Dashboard > Settings > Access Keys")
        production = read_bool(e, "MIDTRANS_IS_PRODUCTION", False)
        snap_default = ("https://app.midtrans.com/snap/v1" if production
                        else "https://app.sandbox.midtrans.com/snap/v1")
        api_default = "https://api.midtrans.com" if production else "https://api.sandbox.midtrans.com"
        log_format = e.get("WEBRANA_LOG_FORMAT", "json").strip().lower() or "json"
        if log_format not in {"json", "text"}:
            raise ConfigError(f"WEBRANA_LOG_FORMAT must be json or text, got {log_format!r}")
        log_level = e.get("WEBRANA_LOG_LEVEL", "INFO").strip().upper() or "INFO"
        if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ConfigError(f"WEBRANA_LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
        proxy_port = read_int(e, "WEBRANA_PROXY_PORT", DEFAULT_PROXY_PORT, 1)
        dashboard_port = read_int(e, "WEBRANA_DASHBOARD_PORT", DEFAULT_DASHBOARD_PORT, 1)
        return cls(
            database_url=database_url,
            redis_url=redis_url,
            master_key=master_key,
            master_key_previous=previous,
            jwt_secret=jwt_secret,
            midtrans_server_key=server_key,
            midtrans_client_key=client_key,
            midtrans_is_production=production,
            midtrans_snap_base_url=read_url(e, "MIDTRANS_SNAP_BASE_URL", snap_default),
            midtrans_api_base_url=read_url(e, "MIDTRANS_API_BASE_URL", api_default),
            proxy_host=e.get("WEBRANA_PROXY_HOST", "127.0.0.1").strip() or "127.0.0.1",
            proxy_port=proxy_port,
            dashboard_host=e.get("WEBRANA_DASHBOARD_HOST", "127.0.0.1").strip() or "127.0.0.1",
            dashboard_port=dashboard_port,
            api_url=read_url(e, "WEBRANA_API_URL", f"http://127.0.0.1:{proxy_port}"),
            console_url=read_url(e, "WEBRANA_CONSOLE_URL", f"http://127.0.0.1:{dashboard_port}"),
            ip_rate_limit=read_int(e, "WEBRANA_IP_RATE_LIMIT", DEFAULT_IP_RATE_LIMIT, 1),
            trusted_proxies=_networks(e.get("WEBRANA_TRUSTED_PROXIES", "127.0.0.0/8,::1/128")),
            api_body_limit=read_int(e, "WEBRANA_API_BODY_LIMIT", DEFAULT_API_BODY_LIMIT, 1024),
            gateway_body_limit=read_int(e, "WEBRANA_GATEWAY_BODY_LIMIT", DEFAULT_GATEWAY_BODY_LIMIT, 1024),
            upstream_base_urls=MappingProxyType(
                {s.id: read_url(e, s.base_url_env, s.default_base_url) for s in SPECS}),
            connect_timeout=read_float(e, "WEBRANA_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT),
            first_byte_timeout=read_float(e, "WEBRANA_FIRST_BYTE_TIMEOUT", DEFAULT_FIRST_BYTE_TIMEOUT),
            idle_timeout=read_float(e, "WEBRANA_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT),
            circuit_failures=read_int(e, "WEBRANA_CIRCUIT_FAILURES", DEFAULT_CIRCUIT_FAILURES, 1),
            circuit_cooldown=read_float(e, "WEBRANA_CIRCUIT_COOLDOWN", DEFAULT_CIRCUIT_COOLDOWN),
            upstream_connections=read_int(e, "WEBRANA_UPSTREAM_CONNECTIONS", DEFAULT_UPSTREAM_CONNECTIONS, 1),
            usd_to_idr=read_int(e, "WEBRANA_USD_TO_IDR", DEFAULT_USD_TO_IDR, 1),
            ppn_percent=read_int(e, "WEBRANA_PPN_PERCENT", DEFAULT_PPN_PERCENT, 0),
            key_cache_size=read_int(e, "WEBRANA_KEY_CACHE_SIZE", DEFAULT_KEY_CACHE_SIZE, 1),
            key_cache_ttl=read_float(e, "WEBRANA_KEY_CACHE_TTL", DEFAULT_KEY_CACHE_TTL),
            usage_queue_max=read_int(e, "WEBRANA_USAGE_QUEUE_MAX", DEFAULT_USAGE_QUEUE_MAX, 1),
            usage_journal_dir=_journal_dir(e),
            usage_fsync_interval=read_float(e, "WEBRANA_USAGE_FSYNC_INTERVAL", DEFAULT_USAGE_FSYNC_INTERVAL),
            shutdown_grace=read_float(e, "WEBRANA_SHUTDOWN_GRACE", DEFAULT_SHUTDOWN_GRACE),
            readiness_delay=read_float(e, "WEBRANA_SHUTDOWN_READINESS_DELAY", DEFAULT_READINESS_DELAY, allow_zero=True),
            keepalive_timeout=read_float(e, "WEBRANA_KEEPALIVE_TIMEOUT", DEFAULT_KEEPALIVE_TIMEOUT),
            workers=read_int(e, "WEBRANA_WORKERS", 1, 0),
            metrics_group_dir=_metrics_group_dir(e.get("PROMETHEUS_MULTIPROC_DIR", "")),
            migrations_dir=e.get("WEBRANA_MIGRATIONS_DIR", "").strip(),
            admin_password=e.get("WEBRANA_ADMIN_PASSWORD") or None,
            seller_name=e.get("WEBRANA_SELLER_NAME", "").strip() or "PT Webrana Teknologi Indonesia",
            seller_address=e.get("WEBRANA_SELLER_ADDRESS", "").strip() or "Jakarta, Indonesia",
            seller_npwp=_npwp(e.get("WEBRANA_SELLER_NPWP", "")),
            seller_email=e.get("WEBRANA_SELLER_EMAIL", "").strip() or "billing@webrana.id",
            body_timeout=read_float(e, "WEBRANA_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT),
            log_format=log_format,
            log_level=log_level,
            dev_mode=read_bool(e, "WEBRANA_DEV", False),
            background_jobs=read_bool(e, "WEBRANA_BACKGROUND_JOBS", True),
            demo=read_bool(e, "WEBRANA_DEMO", False),
            allow_private_upstreams=read_bool(e, "WEBRANA_ALLOW_PRIVATE_UPSTREAMS", False),
            password_hash_concurrency=read_int(e, "WEBRANA_PASSWORD_HASH_CONCURRENCY",
                                               DEFAULT_PASSWORD_HASH_CONCURRENCY, 1),
            password_hash_wait=read_float(e, "WEBRANA_PASSWORD_HASH_WAIT", DEFAULT_PASSWORD_HASH_WAIT),
            signup_limit=read_int(e, "WEBRANA_SIGNUP_LIMIT", DEFAULT_SIGNUP_LIMIT, 1),
            **_mail(e),
        )


def _mail(e: Mapping[str, str]) -> dict[str, Any]:
    smtp = read_smtp_url(e, "WEBRANA_SMTP_URL")
    sender = e.get("WEBRANA_MAIL_FROM", "").strip()
    if sender:
        _, address = email.utils.parseaddr(sender)
        if "@" not in address or any(c in sender for c in "\r\n"):
            raise ConfigError(f"WEBRANA_MAIL_FROM must be an address, e.g. Webrana <no-reply@example.co.id>, "
                              f"got {sender!r}")
    elif smtp is not None:
        raise ConfigError("WEBRANA_MAIL_FROM is not set; with WEBRANA_SMTP_URL it names the sender of every "
                          "e-mail, e.g. Webrana <no-reply@example.co.id> (an address your SMTP server may send as)")
    return {"smtp": smtp, "mail_from": sender}


def _metrics_group_dir(raw: str) -> str:
    path = raw.strip()
    if path and not os.path.isdir(path):
        raise ConfigError(f"PROMETHEUS_MULTIPROC_DIR={path!r} is not a directory; leave it unset "
                          "(`webrana-proxy serve --workers N` sets it for its workers)")
    return path


def _journal_dir(e: Mapping[str, str]) -> str:
    """WEBRANA_USAGE_JOURNAL_DIR; WEBRANA_USAGE_SPILL_DIR is its old name (spill files found there are replayed)."""
    raw = (e.get("WEBRANA_USAGE_JOURNAL_DIR", "").strip() or e.get("WEBRANA_USAGE_SPILL_DIR", "").strip()
           or DEFAULT_USAGE_JOURNAL_DIR)
    if raw.lower() == "off":
        return ""  # rows only in memory until written: a crash loses them (for `make bench` comparisons)
    if os.path.exists(raw) and not os.path.isdir(raw):
        raise ConfigError(f"WEBRANA_USAGE_JOURNAL_DIR={raw!r} is a file, not a directory; point it at a writable "
                          "directory (created if missing), e.g. /var/lib/webrana/journal")
    return raw


def _npwp(raw: str) -> str:
    digits = "".join(c for c in raw if c.isdigit())
    if raw.strip() and len(digits) not in (15, 16):
        raise ConfigError(f"WEBRANA_SELLER_NPWP must be the 15- or 16-digit NPWP, got {raw!r}")
    return digits


def _networks(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ConfigError(f"WEBRANA_TRUSTED_PROXIES has an invalid CIDR {part!r}; "
                              "use a comma-separated list like 127.0.0.0/8,10.0.0.0/8") from None
    return tuple(nets)
