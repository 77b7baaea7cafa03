"""DeepSeek: OpenAI-compatible, with its own cache and reasoning fields.

What differs from OpenAI (docs/providers.md has the sources):

- usage reports cache reads as ``prompt_cache_hit_tokens`` (and the rest as ``prompt_cache_miss_tokens``; the two
  add up to ``prompt_tokens``); newer answers also carry ``prompt_tokens_details.cached_tokens``. Either is read.
- thinking mode answers carry ``reasoning_content`` next to ``content`` (relayed as it is on the chat lane, and
  counted as output when usage must be estimated). In thinking mode an assistant turn that called tools must
  send its ``reasoning_content`` back, or DeepSeek answers 400; a history translated from another dialect
  (Messages, Responses) has none, so such turns get an empty one.
- thinking is on by default on the current models and toggled with ``thinking: {type: enabled|disabled}``; its
  effort is ``reasoning_effort`` (DeepSeek maps minimal..xhigh to its own levels). So an effort is sent with
  ``thinking: {type: enabled}``, and ``none`` becomes ``thinking: {type: disabled}``.
- ``response_format`` takes ``json_object`` only: a ``json_schema`` is sent as ``json_object`` with the schema in a
  system message (DeepSeek also wants the prompt to ask for JSON).
- no images (``Capabilities.vision`` False: an image part is a 400 naming it); ``cache_control`` markers are left
  out (DeepSeek caches every prompt prefix on its own and reports the hits).
- errors are OpenAI-shaped; 402 means the account has no balance left.
"""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.providers.base import JSON, Usage
from webrana_proxy.providers.keyformat import KeyFormat
from webrana_proxy.providers.openai_compat import MIN_KEY_LENGTH, OpenAICompatProvider
from webrana_proxy.providers.passthrough import chunk_usage
from webrana_proxy.providers.reasoning import effort_of
from webrana_proxy.providers.spec import Capabilities, ProviderSpec

THINKING_MODELS = ("deepseek-reasoner",)  # always think; others think when asked (``thinking`` / effort)
SCHEMA_INSTRUCTION = "Answer with JSON only: one JSON value that matches this JSON Schema:\n"


def _thinking(body: JSON) -> bool:
    thinking = body.get("thinking")
    model = body.get("model")
    return ((isinstance(model, str) and model.startswith(THINKING_MODELS))
            or (isinstance(thinking, dict) and thinking.get("type") == "enabled")
            or body.get("reasoning_effort") not in (None, "none"))


def _with_reasoning_on_tool_turns(messages: list[Any]) -> list[Any] | None:
    """The messages with ``reasoning_content: ""`` on assistant tool-call turns lacking it (None: none lacked)."""
    out: list[Any] | None = None
    for i, message in enumerate(messages):
        if (isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls")
                and not isinstance(message.get("reasoning_content"), str)):
            if out is None:
                out = list(messages)
            out[i] = {**message, "reasoning_content": ""}
    return out


def _with_effort(body: JSON) -> JSON:
    """``reasoning_effort`` with the thinking toggle it needs (``none``: thinking off, no effort sent)."""
    effort = effort_of(body)
    if effort is None or "thinking" in body:
        return body
    if effort == "none":
        return {**{k: v for k, v in body.items() if k != "reasoning_effort"}, "thinking": {"type": "disabled"}}
    return {**body, "thinking": {"type": "enabled"}}


def _with_json_object(body: JSON) -> JSON:
    """A ``json_schema`` response format as ``json_object`` plus the schema in a leading system message."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(body.get("messages"), list):
        return body
    spec = fmt.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    instruction = SCHEMA_INSTRUCTION + orjson.dumps(schema if schema is not None else {}).decode()
    return {**body, "response_format": {"type": "json_object"},
            "messages": [{"role": "system", "content": instruction}, *body["messages"]]}


class DeepSeekProvider(OpenAICompatProvider):
    def usage_of(self, answer: JSON) -> Usage | None:
        usage = chunk_usage(answer)
        if usage is not None and not usage.cached_tokens:
            hit = answer["usage"].get("prompt_cache_hit_tokens")
            if isinstance(hit, int) and not isinstance(hit, bool) and hit > 0:
                usage.cached_tokens = hit
        return usage

    def prepare(self, body: JSON) -> JSON:
        out = _with_effort(_with_json_object(body))
        messages = out.get("messages")
        if isinstance(messages, list) and _thinking(out):
            fixed = _with_reasoning_on_tool_turns(messages)
            if fixed is not None:
                return {**out, "messages": fixed}
        return out


SPEC = ProviderSpec(
    id="deepseek", display_name="DeepSeek", base_url_env="DEEPSEEK_BASE_URL",
    default_base_url="https://api.deepseek.com",
    # "sk-" + 32 hex characters; an OpenAI project or service-account key pasted here is refused
    key_format=KeyFormat(("sk-",), MIN_KEY_LENGTH,
                         rejected_prefixes=("sk-ant-", "sk-or-", "sk-proj-", "sk-svcacct-")),
    make=DeepSeekProvider, model_prefixes=("deepseek-",),
    capabilities=Capabilities(vision=False, reasoning_text=True),
    docs_url="https://api-docs.deepseek.com/api/create-chat-completion")
