"""Aliases: a name the user chose (``wbr/fast``) for a chain of models tried in order (the hops), each with its
own parameters and first-byte timeout. Pure: what an alias is, how its stored form is checked and read, and how a
hop's parameters go into each dialect's request body. The API stores them (``api/aliases.py``), the key cache
loads them with the principal, the gateway walks the hops (``gateway/fallback.py``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from webrana_proxy.errors import ValidationFailed

PREFIX = "wbr/"  # reserved for aliases: never read as a provider
NAME_RE = re.compile(r"^wbr/[a-z0-9][a-z0-9._-]{0,62}$")  # the same rule as the table's CHECK
MAX_HOPS = 5
MAX_ALIASES = 100  # per owner
DEFAULT_HOP_TIMEOUT = 15.0  # seconds to the first byte before falling back (the global 120 s is far too long)
MIN_HOP_TIMEOUT, MAX_HOP_TIMEOUT = 0.1, 600.0
# What a hop may set, with its bounds. Names are the chat form's; each dialect's own name is used in its body.
PARAMS: dict[str, tuple[type, float, float]] = {
    "max_tokens": (int, 1, 1_000_000),
    "temperature": (float, 0.0, 2.0),
    "top_p": (float, 0.0, 1.0),
}
# The dialect's name for a hop parameter where it differs from the chat form's.
DIALECT_NAMES = {"responses": {"max_tokens": "max_output_tokens"}}


@dataclass(frozen=True, slots=True)
class Hop:
    model: str
    params: tuple[tuple[str, int | float], ...] = ()  # empty: the client's request as it came
    first_byte_timeout: float | None = None  # None: DEFAULT_HOP_TIMEOUT, or the global one on the last hop

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model}
        if self.params:
            out["params"] = dict(self.params)
        if self.first_byte_timeout is not None:
            out["first_byte_timeout"] = self.first_byte_timeout
        return out


@dataclass(frozen=True, slots=True)
class Alias:
    name: str
    hops: tuple[Hop, ...]


def is_alias_name(model: str) -> bool:
    return model[:4].lower() == PREFIX


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value):
        raise ValidationFailed("name: an alias name is 'wbr/' then 1 to 63 lower-case letters, digits, '.', '_' "
                               "or '-' (e.g. wbr/fast)", param="name", code="invalid_alias_name")
    return value


def parse_hops(value: Any) -> tuple[Hop, ...]:
    """The API's (or the table's) ``hops`` as ``Hop``s; ``ValidationFailed`` naming the field otherwise.
    Whether a hop's model is one Webrana serves is the caller's check (it needs the registry)."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_HOPS:
        raise ValidationFailed(f"hops: a list of 1 to {MAX_HOPS} hops, tried in order", param="hops")
    return tuple(_hop(i, h) for i, h in enumerate(value))


def _hop(i: int, value: Any) -> Hop:
    where = f"hops[{i}]"
    if isinstance(value, str):
        value = {"model": value}
    if not isinstance(value, dict):
        raise ValidationFailed(f"{where}: a model name, or an object with model, params, first_byte_timeout",
                               param=where)
    unknown = set(value) - {"model", "params", "first_byte_timeout"}
    if unknown:
        raise ValidationFailed(f"{where}: unknown field {sorted(unknown)[0]!r}", param=where)
    model = value.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 200 or not model.isprintable():
        raise ValidationFailed(f"{where}.model: a model name of at most 200 characters", param=f"{where}.model")
    if is_alias_name(model):
        raise ValidationFailed(f"{where}.model: a hop is a model, not another alias", param=f"{where}.model",
                               code="alias_in_alias")
    timeout = value.get("first_byte_timeout")
    if timeout is not None:
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not (
                MIN_HOP_TIMEOUT <= timeout <= MAX_HOP_TIMEOUT):
            raise ValidationFailed(f"{where}.first_byte_timeout: seconds, {MIN_HOP_TIMEOUT:g} to "
                                   f"{MAX_HOP_TIMEOUT:g}", param=f"{where}.first_byte_timeout")
        timeout = float(timeout)
    return Hop(model, _params(where, value.get("params")), timeout)


def _params(where: str, value: Any) -> tuple[tuple[str, int | float], ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValidationFailed(f"{where}.params: an object such as {{\"max_tokens\": 512}}", param=f"{where}.params")
    out: list[tuple[str, int | float]] = []
    for name, v in value.items():
        rule = PARAMS.get(name)
        if rule is None:
            raise ValidationFailed(f"{where}.params.{name}: not a hop parameter; one of {', '.join(PARAMS)}",
                                   param=f"{where}.params.{name}")
        kind, low, high = rule
        ok = not isinstance(v, bool) and (isinstance(v, int) if kind is int else isinstance(v, int | float))
        if not ok or not low <= v <= high:
            raise ValidationFailed(f"{where}.params.{name}: {'a whole number' if kind is int else 'a number'} "
                                   f"from {low:g} to {high:g}", param=f"{where}.params.{name}")
        out.append((name, v))
    return tuple(out)


def with_params(body: dict[str, Any], params: tuple[tuple[str, int | float], ...], endpoint: str) -> dict[str, Any]:
    """A copy of the client's ``body`` with the hop's parameters in the dialect's own names (they replace the
    client's). Chat: ``max_tokens`` goes where the client put its limit (``max_completion_tokens`` if it used it)."""
    out = dict(body)
    names = DIALECT_NAMES.get(endpoint, {})
    for name, value in params:
        field = names.get(name, name)
        if endpoint == "chat" and name == "max_tokens" and "max_completion_tokens" in out:
            field = "max_completion_tokens"
        out[field] = value
    return out


def hop_timeout(hop: Hop, last: bool, default: float) -> float:
    """The hop's own first-byte timeout; unset: DEFAULT_HOP_TIMEOUT, but the global ``default`` on the last hop
    (there is nothing to fall back to, so waiting less would only fail calls a slow model would answer)."""
    if hop.first_byte_timeout is not None:
        return hop.first_byte_timeout
    return default if last else min(DEFAULT_HOP_TIMEOUT, default)


def from_row(name: str, hops: Any) -> Alias | None:
    """A stored alias, or None when the stored form no longer reads (never fails a key-cache load)."""
    try:
        return Alias(name, parse_hops(hops))
    except ValidationFailed:
        return None
