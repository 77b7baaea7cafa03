"""Anthropic Messages request -> the internal chat form (protocols.md sections 2 and 5). Pure ``dict -> dict``.

Kept: system (string or text blocks; also ``role: "system"`` messages in ``messages``, which Claude Code sends
for models it does not know, kept in place), multi-block content, images (base64 -> ``data:`` URL, URL -> URL),
``tool_use`` / ``tool_result`` (ids kept; a tool result's images follow it as a user message, since chat tool
messages hold text only), ``tools``, ``tool_choice`` (with ``disable_parallel_tool_use``), ``stop_sequences``,
``max_tokens``, ``temperature``, ``top_p``, ``thinking`` -> ``reasoning_effort`` (by budget; else
``output_config.effort``), ``output_config.format`` / ``output_format`` (JSON Schema) -> ``response_format``,
``metadata.user_id`` -> ``user``, ``cache_control`` on system, text, image and tool-result blocks -> the same
marker on the chat content part (such content stays a list of parts), which the providers that read it (Qwen,
OpenRouter) are sent, ``stream``.
Dropped silently (no equivalent in the chat form): other ``metadata``, ``context_management``, ``cache_control``
on tools, ``top_k``, ``service_tier``, ``container``, ``mcp_servers``, Anthropic server tools (``web_search_...``),
assistant ``thinking`` / ``redacted_thinking`` blocks. Refused with a 400 naming the field: anything that
cannot be honoured (a ``document`` block, an unknown block type, a malformed field). The whole table, per
provider, is ``providers/conformance.py`` (docs/parameters.md).
"""

from __future__ import annotations

from typing import Any

import orjson

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import JSON
from webrana_proxy.providers.prompt_cache import MARKER, marker_of

# ``thinking.budget_tokens`` -> ``reasoning_effort``: below LOW_BUDGET "low", below HIGH_BUDGET "medium", else
# "high" (Anthropic's minimum budget is 1,024; Claude Code's default is about 32,000).
LOW_BUDGET = 4_096
HIGH_BUDGET = 16_384
SKIPPED_ASSISTANT_BLOCKS = ("thinking", "redacted_thinking")  # reasoning: no equivalent to send back
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}
OUTPUT_EFFORTS = ("low", "medium", "high")  # output_config.effort, used when there is no ``thinking``


def _bad(message: str, param: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


def _blocks(content: Any, param: str) -> list[JSON]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _bad("must be a string or an array of content blocks", param)
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _bad("must be an object with a 'type'", f"{param}[{j}]")
    return content


def _text(block: JSON, param: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _bad("text must be a string", f"{param}.text")
    return text


def system_text(system: Any, param: str = "system") -> str | None:
    """The top-level ``system`` (or a system message's content): a string or text blocks, joined
    (``cache_control`` dropped)."""
    if system is None:
        return None
    if isinstance(system, str):
        return system or None
    if not isinstance(system, list):
        raise _bad("must be a string or an array of text blocks", param)
    texts = []
    for j, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _bad("only text blocks are supported", f"{param}[{j}]")
        texts.append(_text(block, f"{param}[{j}]"))
    return "\n\n".join(t for t in texts if t) or None


def _system_content(system: Any, param: str) -> Any:
    """A system content for the chat form: the joined text, or text parts when a block carries a
    ``cache_control`` marker (None when empty). The parts join to the same text (blank lines between blocks)."""
    text = system_text(system, param)
    if text is None or not isinstance(system, list) or not any(MARKER in b for b in system):
        return text
    parts: list[JSON] = []
    for j, block in enumerate(system):
        if block["text"]:
            piece = ("\n\n" if parts else "") + block["text"]
            parts.append(_marked({"type": "text", "text": piece}, block, f"{param}[{j}]"))
    return parts


def _marked(part: JSON, block: JSON, param: str) -> JSON:
    """``part`` with the block's ``cache_control``, if it has one."""
    marker = marker_of(block, param)
    if marker is not None:
        part[MARKER] = marker
    return part


def _image_part(block: JSON, param: str) -> JSON:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _bad("image needs a 'source'", f"{param}.source")
    kind = source.get("type")
    if kind == "base64":
        mime, data = source.get("media_type"), source.get("data")
        if not isinstance(mime, str) or not isinstance(data, str):
            raise _bad("base64 images need media_type and data strings", f"{param}.source")
        return _marked({"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}, block, param)
    if kind == "url":
        url = source.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise _bad("url images need an http(s) url", f"{param}.source.url")
        return _marked({"type": "image_url", "image_url": {"url": url}}, block, param)
    raise _bad(f"image source type '{kind}' cannot be sent to this model (use base64 or url)",
               f"{param}.source.type")


def _tool_result(block: JSON, param: str) -> tuple[JSON, list[JSON]]:
    """(the chat tool message, image parts that must follow it in a user message)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _bad("tool_use_id is required", f"{param}.tool_use_id")
    content = block.get("content", "")
    texts: list[str] = []
    images: list[JSON] = []
    if isinstance(content, str):
        texts.append(content)
    else:
        for k, inner in enumerate(_blocks(content, f"{param}.content")):
            kind = inner["type"]
            if kind == "text":
                texts.append(_text(inner, f"{param}.content[{k}]"))
            elif kind == "image":
                images.append(_image_part(inner, f"{param}.content[{k}]"))
            else:
                raise _bad(f"block type '{kind}' cannot be sent to this model", f"{param}.content[{k}].type")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    marker = marker_of(block, param)
    if marker is not None:  # the chat form marks content parts: the result becomes one marked text part
        return {"role": "tool", "tool_call_id": call_id,
                "content": [{"type": "text", "text": text, MARKER: marker}]}, images
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _user(content: Any, param: str) -> list[JSON]:
    """One Anthropic user turn -> chat messages: its tool results first (chat wants them right after the
    assistant's calls), then one user message with the rest."""
    tools: list[JSON] = []
    parts: list[JSON] = []
    for j, block in enumerate(_blocks(content, param)):
        p = f"{param}[{j}]"
        kind = block["type"]
        if kind == "text":
            text = _text(block, p)
            if text:
                parts.append(_marked({"type": "text", "text": text}, block, p))
        elif kind == "image":
            parts.append(_image_part(block, p))
        elif kind == "tool_result":
            message, images = _tool_result(block, p)
            tools.append(message)
            parts.extend(images)
        else:
            raise _bad(f"block type '{kind}' cannot be sent to this model", f"{p}.type")
    out = tools
    if parts:
        only_text = all(part["type"] == "text" and MARKER not in part for part in parts)
        content_out: Any = "\n".join(part["text"] for part in parts) if only_text else parts
        out.append({"role": "user", "content": content_out})
    return out


def _assistant(content: Any, param: str) -> JSON | None:
    texts: list[str] = []
    marked: list[JSON] = []  # the text parts, kept apart only when one carries a cache_control marker
    calls: list[JSON] = []
    for j, block in enumerate(_blocks(content, param)):
        p = f"{param}[{j}]"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, p))
            if texts[-1]:
                marked.append(_marked({"type": "text", "text": texts[-1]}, block, p))
        elif kind == "tool_use":
            call_id, name, args = block.get("id"), block.get("name"), block.get("input", {})
            if not isinstance(call_id, str) or not call_id or not isinstance(name, str) or not name:
                raise _bad("tool_use needs an id and a name", p)
            if not isinstance(args, dict):
                raise _bad("input must be an object", f"{p}.input")
            calls.append({"id": call_id, "type": "function",
                          "function": {"name": name, "arguments": orjson.dumps(args).decode()}})
        elif kind in SKIPPED_ASSISTANT_BLOCKS:
            continue
        else:
            raise _bad(f"block type '{kind}' cannot be sent to this model", f"{p}.type")
    text = "".join(texts)
    if not text and not calls:
        return None
    message: JSON = {"role": "assistant", "content": text or None}
    if any(MARKER in part for part in marked):
        message["content"] = marked
    if calls:
        message["tool_calls"] = calls
    return message


def _tools(tools: Any) -> list[JSON]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise _bad("must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _bad("must be an object", p)
        if tool.get("type") not in (None, "custom") and "input_schema" not in tool:
            continue  # an Anthropic server tool (web_search, code_execution, ...): no equivalent here
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad("name is required", f"{p}.name")
        schema = tool.get("input_schema", {"type": "object", "properties": {}})
        if not isinstance(schema, dict):
            raise _bad("input_schema must be an object", f"{p}.input_schema")
        fn: JSON = {"name": name, "parameters": schema}
        if isinstance(tool.get("description"), str) and tool["description"]:
            fn["description"] = tool["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(choice: Any, out: JSON) -> None:
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in _CHOICES:
        out["tool_choice"] = _CHOICES[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise _bad("must be {type: auto|any|none} or {type: tool, name}", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        out["parallel_tool_calls"] = False


def reasoning_effort(thinking: Any) -> str | None:
    """Anthropic ``thinking`` as an OpenAI-style ``reasoning_effort`` (None: thinking off or not asked)."""
    if not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "adaptive":
        return "medium"
    if kind != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise _bad("budget_tokens must be a positive integer", "thinking.budget_tokens")
    return "low" if budget < LOW_BUDGET else "medium" if budget < HIGH_BUDGET else "high"


def _number(body: JSON, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad("must be a number", name)
    return value


def prompt_messages(body: JSON) -> list[JSON]:
    """``system`` + ``messages`` as chat messages (also what count_tokens estimates from)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("must be a non-empty array", "messages")
    out: list[JSON] = []
    system = _system_content(body.get("system"), "system")
    if system is not None:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        p = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("user", "assistant", "system") or "content" not in message:
            raise _bad("must be an object with role 'user', 'assistant' or 'system' and content", p)
        if role == "system":  # Claude Code sends these in place for models it does not know
            text = _system_content(message["content"], f"{p}.content")
            if text is not None:
                out.append({"role": "system", "content": text})
        elif role == "user":
            out.extend(_user(message["content"], f"{p}.content"))
        else:
            assistant = _assistant(message["content"], f"{p}.content")
            if assistant is not None:
                out.append(assistant)
    return out


def to_chat(body: JSON, model: str) -> JSON:
    """The chat-form request for ``body`` (a Messages request), addressed to ``model``."""
    out: JSON = {"model": model, "messages": prompt_messages(body)}
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _bad("is required and must be a positive integer", "max_tokens")
    out["max_completion_tokens"] = max_tokens
    for name in ("temperature", "top_p"):
        value = _number(body, name)
        if value is not None:
            out[name] = value
    stop = body.get("stop_sequences")
    if stop is not None:
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise _bad("must be an array of strings", "stop_sequences")
        if stop:
            out["stop"] = list(stop)
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
        _tool_choice(body.get("tool_choice"), out)
    config = body.get("output_config")
    if config is not None and not isinstance(config, dict):
        raise _bad("must be an object", "output_config")
    effort = reasoning_effort(body.get("thinking"))
    if effort is None and config is not None and config.get("effort") in OUTPUT_EFFORTS:
        effort = str(config["effort"])
    if effort is not None:
        out["reasoning_effort"] = effort
    fmt = (config or {}).get("format", body.get("output_format"))
    if fmt is not None:
        out["response_format"] = _response_format(fmt, "output_config.format" if config and "format" in config
                                                  else "output_format")
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if isinstance(user, str) and user:
        out["user"] = user
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("must be true or false", "stream")
    if stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _response_format(fmt: Any, param: str) -> JSON:
    """Anthropic's structured output (``{type: json_schema, schema}``) as the chat form's ``response_format``."""
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise _bad("must be {type: json_schema, schema: {...}}", param)
    return {"type": "json_schema", "json_schema": {"name": "response", "schema": fmt["schema"], "strict": True}}


def to_count_chat(body: JSON, model: str) -> JSON:
    """A count_tokens request (no ``max_tokens``) in the chat form: the prompt and tools only."""
    out: JSON = {"model": model, "messages": prompt_messages(body)}
    tools = _tools(body.get("tools"))
    if tools:
        out["tools"] = tools
    return out
