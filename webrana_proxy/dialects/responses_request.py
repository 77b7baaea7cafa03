"""OpenAI Responses request -> the internal chat form (protocols.md sections 1, 5 and 9a). Pure ``dict -> dict``.

Kept: ``input`` as a string or items (``message`` with ``input_text`` / ``output_text`` / ``input_image`` parts and
user / assistant / system / developer roles, ``function_call``, ``function_call_output``, and Codex's
``custom_tool_call`` / ``custom_tool_call_output`` as function calls whose arguments are ``{"input": ...}``),
``instructions``, flat function tools (``namespace`` tools flattened to ``<namespace>__<name>``, mapped back on
the way out), custom (freeform) tools such as Codex's ``apply_patch`` as functions of one string ``input``
(their calls go back as ``custom_tool_call`` items), ``tool_choice``, ``parallel_tool_calls``,
``max_output_tokens``, ``temperature``, ``top_p``, ``reasoning.effort`` -> ``reasoning_effort``,
``top_logprobs`` -> ``logprobs`` + ``top_logprobs``,
``text.format`` (``json_schema`` / ``json_object``) -> ``response_format`` (providers with structured output
use it; Anthropic answers through a forced tool), ``safety_identifier`` / ``user`` -> ``user``, ``stream``.
Earlier turns
(``previous_response_id``, resolved by the gateway) come first.

Dropped: built-in tools with no equivalent here (``web_search``, ``file_search``, ``code_interpreter``,
``image_generation``, ``local_shell``, ``tool_search``, MCP...): listed in ``ChatPlan.dropped_tools`` so the gateway
logs them; ``reasoning`` items (OpenAI's own, opaque); ``include``, ``store``, ``metadata``,
``prompt_cache_key``, ``service_tier``, ``truncation``, ``client_metadata``. Refused with a 400 naming the field:
``background``, ``conversation``, ``item_reference`` items, images by ``file_id``, files, a
``function_call_output`` whose ``call_id`` has no earlier ``function_call``, anything malformed.

Thinking on Anthropic stays off on this lane (the chat form never asks for it), so Anthropic never needs its
signed thinking blocks back on a tool turn: no turn Webrana sends can be rejected for lacking them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import JSON

NAMESPACE_SEPARATOR = "__"  # namespace tool "crm" with function "find" -> chat function "crm__find"
EFFORTS = {"none": "none", "minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "xhigh": "high"}
MAX_TOP_LOGPROBS = 20  # OpenAI's limit
REFUSED = {"background": "background responses cannot be run on this model; use an OpenAI model",
           "conversation": "conversations are kept by OpenAI; use previous_response_id with this model"}
TEXT_PARTS = ("input_text", "output_text", "text", "summary_text")
_CHOICES = ("auto", "none", "required")
CUSTOM_INPUT = "input"  # the one string parameter a custom (freeform) tool becomes a function of


def _bad(message: str, param: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


@dataclass(slots=True)
class ChatPlan:
    """The chat-form request and what the answer's adapter needs to map back."""

    chat: JSON
    namespaces: dict[str, tuple[str, str]] = field(default_factory=dict)  # chat name -> (namespace, name)
    dropped_tools: list[str] = field(default_factory=list)  # built-in tool types with no equivalent
    custom: set[str] = field(default_factory=set)  # custom (freeform) tools sent as functions of one string


def input_items(body: JSON) -> list[JSON]:
    """``input`` as a list of items (a string is one user message), as the store keeps them."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad("must be a string or an array of input items", "input")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _bad("must be an object", f"input[{i}]")
    return value


def _text(part: JSON, param: str) -> str:
    text = part.get("text")
    if not isinstance(text, str):
        raise _bad("text must be a string", f"{param}.text")
    return text


def _parts(content: Any, param: str) -> list[JSON]:
    """A message's content as chat parts (text and image_url)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad("must be a string or an array of content parts", param)
    out: list[JSON] = []
    for j, part in enumerate(content):
        p = f"{param}[{j}]"
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in TEXT_PARTS:
            out.append({"type": "text", "text": _text(part, p)})
        elif kind == "refusal":
            out.append({"type": "text", "text": str(part.get("refusal") or "")})
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url.startswith(("data:", "https://", "http://")):
                raise _bad("images must be given as image_url (a data: or http(s) URL) for this model; "
                           "file_id images are kept by OpenAI", f"{p}.image_url")
            image: JSON = {"url": url}
            if isinstance(part.get("detail"), str) and part["detail"] != "auto":
                image["detail"] = part["detail"]
            out.append({"type": "image_url", "image_url": image})
        else:
            raise _bad(f"content part type '{kind}' cannot be sent to this model", f"{p}.type")
    return out


def _content(parts: list[JSON]) -> Any:
    if all(part["type"] == "text" for part in parts):
        return "\n".join(part["text"] for part in parts)
    return parts


def _output_text(output: Any, param: str) -> str:
    """A function_call_output's ``output``: a string, or content parts (their texts joined)."""
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        texts = []
        for j, part in enumerate(output):
            if isinstance(part, dict) and part.get("type") in TEXT_PARTS:
                texts.append(_text(part, f"{param}[{j}]"))
            else:
                raise _bad("only text parts can be sent back to this model", f"{param}[{j}]")
        return "\n".join(texts)
    if output is None:
        return ""
    return orjson.dumps(output).decode()


class _Messages:
    """Builds chat messages from items, keeping the chat rules: tool calls on an assistant message, each tool
    result after the call it answers."""

    def __init__(self) -> None:
        self.out: list[JSON] = []
        self.calls: set[str] = set()

    def message(self, role: str, content: Any) -> None:
        self.out.append({"role": role, "content": content})

    def assistant_text(self, text: str) -> None:
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant" and "tool_calls" not in last:
            last["content"] = (last["content"] or "") + text
        else:
            self.out.append({"role": "assistant", "content": text})

    def call(self, call_id: str, name: str, arguments: str) -> None:
        self.calls.add(call_id)
        entry = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        last = self.out[-1] if self.out else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(entry)
        else:
            self.out.append({"role": "assistant", "content": None, "tool_calls": [entry]})

    def result(self, call_id: str, text: str, param: str) -> None:
        if call_id not in self.calls:
            raise _bad(f"no function_call with call_id '{call_id}' comes before this output", param)
        self.out.append({"role": "tool", "tool_call_id": call_id, "content": text})


def _string(item: JSON, name: str, param: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise _bad(f"{name} is required", f"{param}.{name}")
    return value


def _items(items: list[JSON], param: str, messages: _Messages) -> None:
    for i, item in enumerate(items):
        p = f"{param}[{i}]"
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _bad("role must be user, assistant, system or developer", f"{p}.role")
            parts = _parts(item.get("content"), f"{p}.content")
            if role == "assistant":
                text = "".join(part.get("text", "") for part in parts)
                if text:
                    messages.assistant_text(text)
            elif parts:
                messages.message("system" if role == "developer" else role, _content(parts))
        elif kind == "function_call":
            name = _string(item, "name", p)
            namespace = item.get("namespace")
            if isinstance(namespace, str) and namespace:
                name = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
            arguments = item.get("arguments", "{}")
            if not isinstance(arguments, str):
                raise _bad("arguments must be a JSON string", f"{p}.arguments")
            messages.call(_string(item, "call_id", p), name, arguments or "{}")
        elif kind == "custom_tool_call":
            text = item.get("input", "")
            messages.call(_string(item, "call_id", p), _string(item, "name", p),
                          orjson.dumps({CUSTOM_INPUT: text if isinstance(text, str) else ""}).decode())
        elif kind in ("function_call_output", "custom_tool_call_output"):
            messages.result(_string(item, "call_id", p), _output_text(item.get("output"), f"{p}.output"),
                            f"{p}.call_id")
        elif kind == "reasoning":
            continue  # OpenAI's own (opaque, encrypted for OpenAI): nothing another model can read
        elif kind == "item_reference":
            raise _bad("item references point into OpenAI's storage; send the item itself", f"{p}.type")
        else:
            raise _bad(f"item type '{kind}' cannot be sent to this model", f"{p}.type")


def _function(tool: JSON, name: str, param: str) -> JSON:
    params = tool.get("parameters")
    if params is None:
        params = {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise _bad("parameters must be an object", f"{param}.parameters")
    fn: JSON = {"name": name, "parameters": params}
    if isinstance(tool.get("description"), str) and tool["description"]:
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}


def _tools(tools: Any, plan: ChatPlan) -> list[JSON]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("must be an array", "tools")
    out: list[JSON] = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(kind, str):
            raise _bad("must be an object with a 'type'", p)
        if kind == "function":
            out.append(_function(tool, _string(tool, "name", p), p))
        elif kind == "namespace":
            namespace = _string(tool, "name", p)
            inner = tool.get("tools")
            if not isinstance(inner, list):
                raise _bad("must be an array", f"{p}.tools")
            for j, member in enumerate(inner):
                q = f"{p}.tools[{j}]"
                if not isinstance(member, dict) or member.get("type") != "function":
                    plan.dropped_tools.append(f"{namespace}.{member.get('type') if isinstance(member, dict) else '?'}")
                    continue
                name = _string(member, "name", q)
                flat = f"{namespace}{NAMESPACE_SEPARATOR}{name}"
                plan.namespaces[flat] = (namespace, name)
                out.append(_function(member, flat, q))
        elif kind == "custom":
            name = _string(tool, "name", p)
            plan.custom.add(name)
            out.append(_custom(tool, name))
        else:
            plan.dropped_tools.append(kind)
    return out


def _custom(tool: JSON, name: str) -> JSON:
    """A custom (freeform) tool, e.g. Codex's ``apply_patch``, as a function taking its text as one string,
    ``input``; its grammar or format, when it has one, goes into that parameter's description."""
    about = "The tool's whole input, as raw text."
    fmt = tool.get("format")
    if isinstance(fmt, dict) and fmt.get("type") == "grammar" and isinstance(fmt.get("definition"), str):
        about += f" It must match this {fmt.get('syntax') or 'grammar'} grammar:\n{fmt['definition']}"
    fn: JSON = {"name": name, "parameters": {"type": "object", "properties": {
        CUSTOM_INPUT: {"type": "string", "description": about}}, "required": [CUSTOM_INPUT]}}
    if isinstance(tool.get("description"), str) and tool["description"]:
        fn["description"] = tool["description"]
    return {"type": "function", "function": fn}


def _tool_choice(choice: Any, tools: list[JSON], out: JSON) -> None:
    if choice is None or not tools:
        return
    if choice in _CHOICES:
        out["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    elif kind == "allowed_tools":
        out["tool_choice"] = "required" if choice.get("mode") == "required" else "auto"
    elif isinstance(kind, str):
        out["tool_choice"] = "auto"  # a built-in tool (dropped): let the model choose among the rest
    else:
        raise _bad("must be auto, none, required or {type: function, name}", "tool_choice")


def _text_format(text: Any, out: JSON) -> None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict):
        return
    kind = fmt.get("type")
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
    elif kind == "json_schema":
        schema = fmt.get("schema")
        if not isinstance(schema, dict):
            raise _bad("schema must be an object", "text.format.schema")
        spec: JSON = {"name": str(fmt.get("name") or "response"), "schema": schema}
        if isinstance(fmt.get("strict"), bool):
            spec["strict"] = fmt["strict"]
        out["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif kind not in (None, "text"):
        raise _bad(f"format type '{kind}' cannot be sent to this model", "text.format.type")


def _number(body: JSON, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("must be a number", name)
    return value


def to_chat(body: JSON, model: str, history: list[JSON] | None = None) -> ChatPlan:
    """The chat-form request for ``body`` (a Responses request) addressed to ``model``; ``history`` holds the
    earlier turns' items (input and output) when ``previous_response_id`` named a response Webrana stored."""
    for name, why in REFUSED.items():
        if body.get(name) not in (None, False):
            raise _bad(why, name)
    plan = ChatPlan(chat={"model": model})
    messages = _Messages()
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        if instructions:
            messages.message("system", instructions)
    elif isinstance(instructions, list):
        _items([i if isinstance(i, dict) else {} for i in instructions], "instructions", messages)
    elif instructions is not None:
        raise _bad("must be a string", "instructions")
    if history:
        _items(history, "previous_response_id", messages)
    _items(input_items(body), "input", messages)
    if not any(m["role"] in ("user", "tool") for m in messages.out):
        raise _bad("needs at least one user message or function_call_output", "input")
    chat = plan.chat
    chat["messages"] = messages.out
    max_tokens = body.get("max_output_tokens")
    if max_tokens is not None:
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise _bad("must be a positive integer", "max_output_tokens")
        chat["max_completion_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        value = _number(body, name)
        if value is not None:
            chat[name] = value
    tools = _tools(body.get("tools"), plan)
    if tools:
        chat["tools"] = tools
        _tool_choice(body.get("tool_choice"), tools, chat)
        if isinstance(body.get("parallel_tool_calls"), bool):
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    reasoning = body.get("reasoning")
    effort = reasoning.get("effort") if isinstance(reasoning, dict) else None
    if isinstance(effort, str) and effort in EFFORTS:
        chat["reasoning_effort"] = EFFORTS[effort]
    _text_format(body.get("text"), chat)
    top = body.get("top_logprobs")
    if top is not None:
        if isinstance(top, bool) or not isinstance(top, int) or not 0 <= top <= MAX_TOP_LOGPROBS:
            raise _bad(f"must be an integer from 0 to {MAX_TOP_LOGPROBS}", "top_logprobs")
        if top:
            chat["logprobs"] = True
            chat["top_logprobs"] = top
    user = body.get("safety_identifier") or body.get("user")
    if isinstance(user, str) and user:
        chat["user"] = user
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("must be true or false", "stream")
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return plan
