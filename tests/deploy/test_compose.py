"""compose.yaml, .env.example and the Dockerfile, checked statically (no Docker engine on the test machines):
the services, their health checks and start order, and that the environment compose gives the processes is
exactly what the real settings code asks for."""

from __future__ import annotations

import base64
import fnmatch
import ipaddress
import os
import re
import secrets
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import compose_spec
import dockerfile
import pytest
import yaml

from webrana_proxy.clientip import client_ip
from webrana_proxy.envvalues import ConfigError
from webrana_proxy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

APP_SERVICES = ("migrate", "proxy", "dashboard")
LONG_RUNNING = ("postgres", "redis", "proxy", "dashboard")
# Read by the console (its own settings): the session cookie key and its route to the proxy.
DASHBOARD_REQUIRED = {"WEBRANA_SESSION_SECRET", "WEBRANA_API_URL"}
# Used by compose.yaml itself (interpolation), not by the processes.
COMPOSE_ONLY = {"POSTGRES_PASSWORD", "REDIS_PASSWORD", "WEBRANA_WORKERS", "WEBRANA_PROXY_PUBLISH",
                "WEBRANA_DASHBOARD_PUBLISH", "WEBRANA_COMPOSE_NETWORK", "WEBRANA_EXTRA_TRUSTED_PROXIES"}
# Containers listen on every interface of their network namespace (the app's default is loopback only).
ALL_INTERFACES = "0.0.0.0"  # noqa: S104


# --- helpers: the parts of Compose's own behaviour the checks rely on --------------------------------------

_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}"
                  r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error} and $$."""
    def one(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        value = env.get(name)
        missing = value is None or (op is not None and op.startswith(":") and value == "")
        if op in {"?", ":?"} and missing:
            raise KeyError(f"{name}: {arg}")
        if op in {"-", ":-"} and missing:
            return interpolate(arg, env)
        return value or ""
    return _VAR.sub(one, text)


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads an env_file: comments and blank lines skipped, no quotes here."""
    env: dict[str, str] = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {raw!r}"
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", key), f"{path.name}: bad variable name {key!r}"
        env[key] = value
    return env


def commented_names(path: Path) -> set[str]:
    return set(re.findall(r"^#\s*([A-Z][A-Z0-9_]+)\b", path.read_text(encoding="utf-8"), re.MULTILINE))


def real_secrets() -> dict[str, str]:
    """What a person puts into .env after following the comments in .env.example."""
    return {
        "POSTGRES_PASSWORD": secrets.token_hex(24),
        "REDIS_PASSWORD": secrets.token_hex(24),
        "MASTER_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "WEBRANA_SESSION_SECRET": secrets.token_urlsafe(48),
        "MIDTRANS_SERVER_KEY": "SB-Mid-server-" + secrets.token_urlsafe(12),
        "MIDTRANS_CLIENT_KEY": "SB-Mid-client-" + secrets.token_urlsafe(12),
    }


def compose(dotenv: Mapping[str, str]) -> dict[str, Any]:
    """compose.yaml after interpolation with the variables of .env (Compose reads .env for that too)."""
    loaded = yaml.safe_load(interpolate(COMPOSE.read_text(encoding="utf-8"), dotenv))
    assert isinstance(loaded, dict)
    return loaded


def container_env(service: dict[str, Any], dotenv: Mapping[str, str]) -> dict[str, str]:
    """The environment a service's process starts with: env_file first, `environment:` on top."""
    env: dict[str, str] = {}
    for entry in service.get("env_file", []):
        path = entry["path"] if isinstance(entry, dict) else entry
        assert path == ".env", "secrets come from the one git-ignored .env"
        env.update(dotenv)
    environment = service.get("environment", {})
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    env.update({k: str(v) for k, v in environment.items()})
    return env


class RecordingEnv(dict[str, str]):
    """An environment that remembers every name the settings code asks for."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return super().__contains__(key)


def valid_env() -> dict[str, str]:
    return {
        "DATABASE_URL": "postgresql://webrana:pw@127.0.0.1:5432/webrana",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        **{k: v for k, v in real_secrets().items() if k not in COMPOSE_ONLY},
    }


def required_by_settings() -> set[str]:
    """Variables without which Settings.from_env refuses to start: found by leaving each out in turn."""
    full = valid_env()
    Settings.from_env(full)
    required = set()
    for name in full:
        try:
            Settings.from_env({k: v for k, v in full.items() if k != name})
        except ConfigError:
            required.add(name)
    return required


@pytest.fixture(scope="module")
def dotenv() -> dict[str, str]:
    """.env as a person fills it in: the example with every placeholder replaced."""
    example = read_env_file(ENV_EXAMPLE)
    filled = real_secrets()
    assert set(filled) <= set(example), "every secret has a line in .env.example"
    return {**example, **filled}


@pytest.fixture(scope="module")
def services(dotenv: dict[str, str]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose(dotenv)["services"]
    return found


# --- compose.yaml ------------------------------------------------------------------------------------------

def test_compose_file_follows_the_compose_specification(dotenv: dict[str, str]) -> None:
    """Parsed by compose-spec (bindings of the Rust compose_spec crate): unknown keys, bad durations,
    bad depends_on conditions or port syntax are rejected, as `docker compose config` would."""
    text = interpolate(COMPOSE.read_text(encoding="utf-8"), dotenv)
    parsed = compose_spec.PyOptions(apply_merge=True).from_yaml(text)
    parsed.validate()
    assert sorted(parsed.service_names()) == ["dashboard", "migrate", "postgres", "proxy", "redis"]


@pytest.mark.parametrize(("good", "typo"), [("stop_grace_period: 45s", "stop_grace_periods: 45s"),
                                            ("condition: service_healthy", "condition: service_healty"),
                                            ("interval: 5s", "interval: 5 seconds")])
def test_the_specification_check_rejects_a_broken_compose_file(dotenv: dict[str, str], good: str,
                                                               typo: str) -> None:
    """Guards the guard."""
    text = interpolate(COMPOSE.read_text(encoding="utf-8"), dotenv)
    assert good in text
    with pytest.raises(ValueError):
        compose_spec.PyOptions(apply_merge=True).from_yaml(text.replace(good, typo, 1))


def test_compose_runs_the_databases_a_migration_and_both_processes(services: dict[str, Any]) -> None:
    assert set(services) == {"postgres", "redis", "migrate", "proxy", "dashboard"}
    assert services["postgres"]["image"] == "postgres:15-alpine"
    assert services["redis"]["image"] == "redis:7-alpine"
    images = {services[name]["image"] for name in APP_SERVICES}
    assert len(images) == 1, "one image for every Webrana process"
    for name in APP_SERVICES:
        build = services[name]["build"]
        build = build if isinstance(build, dict) else {"context": build}
        assert (ROOT / build["context"] / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert services["migrate"]["command"] == ["webrana-proxy", "migrate"]
    assert services["proxy"]["command"][:2] == ["webrana-proxy", "serve"]
    assert services["dashboard"]["command"] == ["webrana-dashboard", "serve"]


def test_migrate_is_a_one_shot_that_the_processes_wait_for(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["restart"] == "no"
    assert migrate["healthcheck"] == {"disable": True}
    assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
    proxy = services["proxy"]["depends_on"]
    assert proxy["migrate"]["condition"] == "service_completed_successfully"
    assert proxy["postgres"]["condition"] == "service_healthy"
    assert proxy["redis"]["condition"] == "service_healthy"
    assert services["dashboard"]["depends_on"]["proxy"]["condition"] == "service_healthy"


def _healthcheck_command(service: dict[str, Any]) -> list[str]:
    test = service["healthcheck"]["test"]
    assert test[0] in {"CMD", "CMD-SHELL"}, test
    return list(test[1:]) if test[0] == "CMD" else ["sh", "-c", test[1]]


def _python_snippet(command: list[str]) -> str | None:
    return command[2] if command[:2] == ["python", "-c"] else None


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_every_long_running_service_has_a_working_health_check(services: dict[str, Any], name: str) -> None:
    command = _healthcheck_command(services[name])
    snippet = _python_snippet(command)
    if snippet is not None:
        compile(snippet, f"{name} healthcheck", "exec")  # a typo here would keep the service unhealthy
    health = services[name]["healthcheck"]
    assert health.get("retries", 3) >= 3
    text = " ".join(command)
    expected = {"postgres": "pg_isready", "redis": "redis-cli", "proxy": "/health/ready", "dashboard": "8081"}
    assert expected[name] in text


def test_proxy_gets_time_to_drain_before_compose_kills_it(services: dict[str, Any],
                                                           dotenv: dict[str, str]) -> None:
    grace = float(container_env(services["proxy"], dotenv).get("WEBRANA_SHUTDOWN_GRACE", "30"))
    stop = services["proxy"]["stop_grace_period"]
    assert stop.endswith("s")
    assert float(stop[:-1]) > grace
    assert services["proxy"].get("init") is True, "tini forwards SIGTERM and reaps the worker processes"


def test_services_publish_only_on_loopback_by_default(dotenv: dict[str, str]) -> None:
    defaults = {k: v for k, v in dotenv.items() if not k.endswith("_PUBLISH")}
    services = compose(defaults)["services"]
    for name in ("proxy", "dashboard"):
        for port in services[name]["ports"]:
            assert str(port).startswith("127.0.0.1:")
    assert "ports" not in services["postgres"] and "ports" not in services["redis"]


def test_app_containers_are_hardened(services: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        service = services[name]
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
        assert service["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in service["security_opt"]
        assert "user" not in service or service["user"] not in {"0", "root"}


# --- the environment the processes get ---------------------------------------------------------------------

def test_compose_gives_the_proxy_every_setting_the_code_requires(services: dict[str, Any],
                                                                 dotenv: dict[str, str]) -> None:
    required = required_by_settings()
    assert {"DATABASE_URL", "REDIS_URL", "MASTER_ENCRYPTION_KEY", "JWT_SECRET"} <= required
    for name in ("migrate", "proxy"):
        env = container_env(services[name], dotenv)
        assert required <= set(env), f"{name} lacks {sorted(required - set(env))}"
        settings = Settings.from_env(env)  # and the values are ones the settings accept
        assert settings.proxy_host == ALL_INTERFACES
        assert settings.database_url.startswith("postgresql://webrana:")
        assert "@postgres:5432/webrana" in settings.database_url
        assert settings.redis_url == f"redis://:{dotenv['REDIS_PASSWORD']}@redis:6379/0"
        assert env["WEBRANA_MIGRATIONS_DIR"] == "/app/sql"


def test_compose_gives_the_console_its_settings(services: dict[str, Any], dotenv: dict[str, str]) -> None:
    env = container_env(services["dashboard"], dotenv)
    assert set(env) >= DASHBOARD_REQUIRED
    assert env["WEBRANA_API_URL"] == "http://proxy:8080"
    assert env["WEBRANA_DASHBOARD_HOST"] == ALL_INTERFACES
    assert len(env["WEBRANA_SESSION_SECRET"].encode()) >= 32


@pytest.mark.parametrize("network", [None, "10.77.3"])
def test_the_proxy_believes_x_forwarded_for_from_the_console_alone(dotenv: dict[str, str],
                                                                  network: str | None) -> None:
    """Issue 11, item 8: the console has a fixed address on a fixed subnet and the proxy trusts exactly that
    address. Not the subnet: published ports relay from the gateway, and other containers sit there too."""
    env = dict(dotenv) if network is None else {**dotenv, "WEBRANA_COMPOSE_NETWORK": network}
    env["WEBRANA_TRUSTED_PROXIES"] = "0.0.0.0/0"  # even a careless .env line cannot widen it
    rendered = compose(env)
    ipam = rendered["networks"]["default"]["ipam"]["config"]
    assert len(ipam) == 1
    subnet = ipaddress.ip_network(ipam[0]["subnet"])
    gateway = ipaddress.ip_address(ipam[0]["gateway"])
    dynamic = ipaddress.ip_network(ipam[0]["ip_range"])
    services = rendered["services"]
    console = ipaddress.ip_address(services["dashboard"]["networks"]["default"]["ipv4_address"])
    assert console in subnet and console not in {subnet.network_address, subnet.broadcast_address, gateway}
    assert console not in dynamic, "Docker could hand the console's address to another container first"
    assert dynamic.subnet_of(subnet)
    assert gateway in subnet and gateway not in dynamic
    for name, service in services.items():
        if name != "dashboard":
            assert "networks" not in service, f"{name}: the others take addresses from ip_range"

    proxy_env = container_env(services["proxy"], env)
    assert proxy_env["WEBRANA_TRUSTED_PROXIES"].split(",")[0] == f"{console}/32"
    trusted = Settings.from_env(proxy_env).trusted_proxies
    assert trusted == (ipaddress.ip_network(f"{console}/32"),)

    browser = "203.0.113.9"
    assert client_ip(str(console), f"{browser}", trusted) == browser
    assert client_ip(str(console), f"198.51.100.1, {browser}", trusted) == browser  # forged hop ignored
    for peer in (gateway, dynamic.network_address, dynamic.broadcast_address - 1):
        assert client_ip(str(peer), browser, trusted) == str(peer), f"{peer} must not choose its address"


def test_an_extra_trusted_proxy_is_added_to_the_console_never_instead_of_it(dotenv: dict[str, str]) -> None:
    env = {**dotenv, "WEBRANA_EXTRA_TRUSTED_PROXIES": "192.0.2.7/32"}
    rendered = compose(env)
    console = rendered["services"]["dashboard"]["networks"]["default"]["ipv4_address"]
    trusted = Settings.from_env(container_env(rendered["services"]["proxy"], env)).trusted_proxies
    assert trusted == (ipaddress.ip_network(f"{console}/32"), ipaddress.ip_network("192.0.2.7/32"))


def test_the_console_gets_no_trust_setting_and_migrate_none_either(services: dict[str, Any],
                                                                 dotenv: dict[str, str]) -> None:
    """Only the proxy reads X-Forwarded-For; the example .env itself names no trusted address."""
    assert "WEBRANA_TRUSTED_PROXIES" not in dotenv
    for name in ("dashboard", "migrate"):
        assert "WEBRANA_TRUSTED_PROXIES" not in container_env(services[name], dotenv)


def test_the_placeholders_of_env_example_never_start_a_server() -> None:
    """Copying .env.example without filling it in must fail loudly: there is no usable default secret."""
    example = read_env_file(ENV_EXAMPLE)
    env = {**example, "DATABASE_URL": "postgresql://webrana:x@postgres:5432/webrana",
           "REDIS_URL": "redis://redis:6379/0"}
    with pytest.raises(ConfigError):
        Settings.from_env(env)
    for name in ("MASTER_ENCRYPTION_KEY", "JWT_SECRET", "WEBRANA_SESSION_SECRET"):
        assert len(example[name].encode()) < 32, f"{name}'s placeholder must be unusable"


def test_env_example_names_every_variable_the_settings_read() -> None:
    recorder = RecordingEnv(valid_env())
    Settings.from_env(recorder)
    listed = set(read_env_file(ENV_EXAMPLE)) | commented_names(ENV_EXAMPLE)
    missing = sorted(recorder.asked - listed)
    assert missing == [], f".env.example does not mention {missing}"


def test_env_example_mentions_how_to_generate_each_secret() -> None:
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    assert "base64.b64encode(os.urandom(32))" in text
    assert "token_urlsafe" in text and "token_hex" in text


def test_the_env_file_stays_out_of_git_and_out_of_the_image() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "add .env to .gitignore: it holds the real secrets"
    assert _docker_ignored(".env")


# --- Dockerfile --------------------------------------------------------------------------------------------

Instruction = tuple[str, tuple[str, ...], tuple[str, ...]]  # (INSTRUCTION, flags, arguments)


def _stages() -> list[tuple[str, list[Instruction]]]:
    """[(base image, instructions of that stage)], parsed by BuildKit's own parser (the `dockerfile`
    package), with the ARG defaults declared before the first FROM applied to the base images."""
    args: dict[str, str] = {}
    stages: list[tuple[str, list[Instruction]]] = []
    for command in dockerfile.parse_file(str(DOCKERFILE)):
        word = command.cmd.upper()
        if word == "ARG" and not stages:
            name, _, default = command.value[0].partition("=")
            args[name] = default
        elif word == "FROM":
            stages.append((interpolate(command.value[0], args), []))
        elif stages:
            stages[-1][1].append((word, tuple(command.flags), tuple(command.value)))
    return stages


def _values(stage: list[Instruction], word: str) -> list[tuple[str, ...]]:
    return [value for name, _, value in stage if name == word]


def _dockerignore_patterns() -> list[str]:
    return [line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.strip().startswith("#")]


def _docker_ignored(path: str) -> bool:
    ignored = False
    for pattern in _dockerignore_patterns():
        negate = pattern.startswith("!")
        bare = pattern.lstrip("!").rstrip("/")
        candidates = [bare, bare.removeprefix("**/")]
        if any(fnmatch.fnmatch(path, c) or path.startswith(c + "/") for c in candidates):
            ignored = not negate
    return ignored


def test_dockerfile_builds_in_one_stage_and_runs_slim_in_another() -> None:
    stages = _stages()
    assert len(stages) >= 2
    final_base, final = stages[-1]
    assert re.fullmatch(r"python:3\.11-slim(-[a-z]+)?", final_base), final_base
    builder_runs = " ".join(v[0] for v in _values(stages[0][1], "RUN"))
    assert "build-essential" in builder_runs and "pip wheel" in builder_runs
    final_runs = " ".join(v[0] for v in _values(final, "RUN"))
    for tool in ("build-essential", "gcc", "apt-get install", "make "):
        assert tool not in final_runs, f"the final image must not get {tool!r}"
    assert "--no-index" in final_runs, "the final stage installs only the builder's wheels"
    copied_from_builder = [value for word, flags, value in final
                           if word == "COPY" and any(f.startswith("--from") for f in flags)]
    assert copied_from_builder == [], "the wheels are bind-mounted, never copied into a layer"


def test_dockerfile_runs_as_a_numeric_non_root_user_with_a_health_check() -> None:
    final = _stages()[-1][1]
    users = _values(final, "USER")
    assert users, "USER missing"
    uid = users[-1][0].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric, so Kubernetes' runAsNonRoot can check it"
    health = _values(final, "HEALTHCHECK")
    assert len(health) == 1
    assert health[0][:3] == ("CMD", "python", "-c")
    compile(health[0][3], "HEALTHCHECK", "exec")
    assert "/health" in health[0][3]
    assert _values(final, "CMD")[-1] == ("webrana-proxy", "serve")


def test_dockerfile_ships_the_migrations_and_container_settings() -> None:
    final = _stages()[-1][1]
    assert ("sql", "/app/sql") in _values(final, "COPY")
    settings: dict[str, str] = {}
    for pairs in _values(final, "ENV"):
        settings.update(zip(pairs[::2], pairs[1::2], strict=True))
    assert settings["WEBRANA_MIGRATIONS_DIR"] == "/app/sql"
    assert settings["WEBRANA_PROXY_HOST"] == ALL_INTERFACES
    assert settings["WEBRANA_DASHBOARD_HOST"] == ALL_INTERFACES
    assert settings["WEBRANA_LOG_FORMAT"] == "json"
    assert settings["PYTHONDONTWRITEBYTECODE"] == "1"


def test_everything_the_dockerfile_copies_exists_and_is_in_the_build_context() -> None:
    for _, stage in _stages():
        for word, flags, value in stage:
            if word != "COPY" or any(f.startswith("--from=") for f in flags):
                continue
            for source in value[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
                assert not _docker_ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    for path in (".env", ".webrana", ".git", ".venv", "tests", "webrana_proxy/__pycache__"):
        assert _docker_ignored(path), path
    for path in ("pyproject.toml", "README.md", "webrana_proxy", "webrana_dashboard", "sql"):
        assert not _docker_ignored(path), path
