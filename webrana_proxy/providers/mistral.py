"""Mistral (La Plateforme): OpenAI-like chat, but strict about what it is sent.

What differs from OpenAI (docs/providers.md has the sources):

- the request schema forbids unknown fields (422 ``extra_forbidden``), among them ``stream_options``,
  ``max_completion_tokens`` and an assistant message's ``reasoning_content``. So no ``stream_options`` is added
  (Mistral reports usage on the last chunk of every stream anyway), ``max_completion_tokens`` is sent as
  ``max_tokens`` and ``reasoning_content`` is left out of the history.
- tool-call ids must be exactly 9 letters and digits (400 otherwise). Mistral's own ids already are, and pass
  unchanged; any other id in the history (OpenAI's ``call_...``, Anthropic's ``toolu_...`` from the Messages
  dialect) is mapped to a 9-character id derived from it, the same on every turn, so an assistant call and its
  tool result still pair up. Answers need no mapping back: the ids Mistral returns are its own, and the client
  sends them back unchanged.
- the request's own spellings: ``seed`` is ``random_seed``; ``reasoning_effort`` takes ``none`` or ``high`` (the
  adjustable models, mistral-small and mistral-medium-3-5), so the weaker efforts go as ``none`` and the stronger
  as ``high``; ``user`` does not exist (left out) and neither do ``logprobs`` / ``top_logprobs`` (a 400 naming
  them, rather than Mistral's 422); ``cache_control`` markers are left out (like any unknown field, 422).
- errors: ``{"object": "error", "message": <text, or {"detail": [pydantic errors]}>, "type", "param", "code"}``
  at the top level; 401 is ``{"message": "Unauthorized", "request_id"}``.
- embeddings (``mistral-embed``, ``codestral-embed``) return floats; ``base64`` is encoded here.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

import orjson

from webrana_proxy.errors import BadRequest, UpstreamError
from webrana_proxy.providers import upstream_errors
from webrana_proxy.providers.base import JSON
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import OpenAICompatProvider
from webrana_proxy.providers.reasoning import effort_of
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

TOOL_ID = re.compile(r"[A-Za-z0-9]{9}")
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
KEY_LENGTH = 32  # Mistral keys are 32 letters and digits, with no prefix
EFFORTS = {"none": "none", "minimal": "none", "low": "high", "medium": "high", "high": "high", "xhigh": "high"}
UNKNOWN_FIELDS = ("stream_options", "user")  # fields Mistral's schema forbids that are simply left out


def mistral_tool_id(call_id: str) -> str:
    """``call_id`` itself when Mistral takes it, else 9 letters and digits derived from it (deterministic)."""
    if TOOL_ID.fullmatch(call_id):
        return call_id
    n = int.from_bytes(hashlib.sha256(call_id.encode()).digest()[:8], "big")
    out = []
    for _ in range(9):
        n, r = divmod(n, 62)
        out.append(ALPHABET[r])
    return "".join(out)


def _message(message: Any) -> Any:
    """One history message as Mistral takes it (the same object when nothing changes)."""
    if not isinstance(message, dict):
        return message
    out = message
    if "reasoning_content" in out:
        out = {k: v for k, v in out.items() if k != "reasoning_content"}
    call_id = out.get("tool_call_id")
    if isinstance(call_id, str) and not TOOL_ID.fullmatch(call_id):
        out = {**out, "tool_call_id": mistral_tool_id(call_id)}
    calls = out.get("tool_calls")
    if isinstance(calls, list) and any(isinstance(c, dict) and isinstance(c.get("id"), str)
                                       and not TOOL_ID.fullmatch(c["id"]) for c in calls):
        out = {**out, "tool_calls": [
            {**c, "id": mistral_tool_id(c["id"])} if isinstance(c, dict) and isinstance(c.get("id"), str) else c
            for c in calls]}
    return out


def _detail_text(detail: Any) -> str | None:
    """Pydantic's ``[{"loc": [...], "msg": ...}]`` as one line naming the fields."""
    if not isinstance(detail, list):
        return None
    parts = []
    for item in detail:
        if isinstance(item, dict) and isinstance(item.get("msg"), str):
            loc = item.get("loc")
            where = ".".join(str(p) for p in loc if p != "body") if isinstance(loc, list) else ""
            parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(parts) or None


class MistralProvider(OpenAICompatProvider):
    adds_stream_usage = False  # stream_options is refused; usage comes on the last chunk regardless
    upstream_base64_embeddings = False

    def prepare(self, body: JSON) -> JSON:
        for name in ("logprobs", "top_logprobs"):
            if body.get(name) not in (None, False, 0):
                raise BadRequest(f"'{name}' is not supported for Mistral models (they return no token "
                                 "probabilities)", param=name)
        effort = effort_of(body)
        out = body
        if any(name in out for name in (*UNKNOWN_FIELDS, "max_completion_tokens", "seed", "logprobs",
                                        "top_logprobs")) or effort is not None:
            out = {k: v for k, v in out.items()
                   if k not in UNKNOWN_FIELDS and k not in ("logprobs", "top_logprobs")}
            if "max_completion_tokens" in out:
                limit = out.pop("max_completion_tokens")
                out.setdefault("max_tokens", limit)
            if "seed" in out:
                out.setdefault("random_seed", out.pop("seed"))
            if effort is not None:
                out["reasoning_effort"] = EFFORTS[effort]
        messages = out.get("messages")
        if isinstance(messages, list):
            fixed = [_message(m) for m in messages]
            if any(a is not b for a, b in zip(fixed, messages, strict=True)):
                out = {**out, "messages": fixed}
        return out

    def upstream_error(self, status: int, raw: bytes, headers: dict[str, str]) -> UpstreamError:
        try:
            parsed: Any = orjson.loads(raw)
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict) or isinstance(parsed.get("error"), dict):
            return super().upstream_error(status, raw, headers)
        message = parsed.get("message")
        if isinstance(message, dict):
            message = _detail_text(message.get("detail"))
        if not isinstance(message, str):
            message = _detail_text(parsed.get("detail")) or upstream_errors.text_of(raw)
        code = parsed.get("code")
        error_type = parsed.get("type")
        return upstream_errors.build(
            self.display_name, status, message,
            code=str(code) if isinstance(code, str | int) and not isinstance(code, bool) else None,
            headers=headers, error_type=error_type if isinstance(error_type, str) and error_type else None)


SPEC = ProviderSpec(
    id="mistral", display_name="Mistral", base_url_env="MISTRAL_BASE_URL",
    default_base_url="https://api.mistral.ai/v1",
    key_format=KeyFormat(("",), KEY_LENGTH, KEY_LENGTH, pattern=re.compile(r"[A-Za-z0-9]+"),
                         hint=f"a Mistral key is {KEY_LENGTH} letters and digits"),
    make=MistralProvider,
    model_prefixes=("mistral-", "codestral-", "magistral-", "devstral-", "ministral-", "pixtral-",
                    "open-mistral-", "open-mixtral-"),
    capabilities=Capabilities(embeddings=True),
    docs_url="https://docs.mistral.ai/api/")
