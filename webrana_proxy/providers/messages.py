"""Reading and checking an OpenAI chat request before it is translated for another provider.

Every malformed input raises ``BadRequest`` naming the field, so a hostile body never becomes a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import JSON

_DATA_URL = re.compile(r"data:(?P<mime>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)", re.DOTALL)


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    description: str | None
    parameters: JSON | None


def messages_of(body: JSON) -> list[JSON]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise BadRequest(f"messages[{i}] must be an object with a 'role'", param=f"messages[{i}]")
    return messages


def text_of(content: Any, param: str) -> str:
    """The text of a system/developer/tool content: a string or an array of text parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            else:
                raise BadRequest(f"{param} may only contain text parts here", param=param)
        return "".join(texts)
    raise BadRequest(f"{param} must be a string or an array of content parts", param=param)


def parts_of(content: Any, param: str) -> list[JSON]:
    """Content as a list of parts (a string becomes one text part); null becomes no parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if isinstance(content, list):
        for part in content:
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise BadRequest(f"{param} has a content part without a 'type'", param=param)
        return content
    raise BadRequest(f"{param} must be a string or an array of content parts", param=param)


def image_url_of(part: JSON, param: str) -> str:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise BadRequest(f"{param}: image_url.url must be a string", param=param)
    return url


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>;base64,<data>`` -> (mime, base64 data); None for anything else."""
    m = _DATA_URL.fullmatch(url)
    if m is None:
        return None
    return m.group("mime"), m.group("data")


def arguments_of(arguments: Any, param: str) -> JSON:
    """A tool call's ``arguments`` JSON string as an object (empty string -> {})."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if not isinstance(arguments, str):
        raise BadRequest(f"{param} must be a JSON string", param=param)
    try:
        value = orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise BadRequest(f"{param} is not valid JSON", param=param) from None
    if not isinstance(value, dict):
        raise BadRequest(f"{param} must encode a JSON object", param=param)
    return value


def tool_calls_of(message: JSON, param: str) -> list[tuple[str, str, JSON]]:
    """(id, name, arguments object) for each tool call of an assistant message."""
    calls = message.get("tool_calls")
    if calls is None:
        return []
    if not isinstance(calls, list):
        raise BadRequest(f"{param}.tool_calls must be an array", param=f"{param}.tool_calls")
    out = []
    for j, call in enumerate(calls):
        p = f"{param}.tool_calls[{j}]"
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest(f"{p} needs function.name", param=p)
        call_id = call.get("id")
        if not isinstance(call_id, str) or not call_id:
            raise BadRequest(f"{p} needs an id", param=p)
        out.append((call_id, fn["name"], arguments_of(fn.get("arguments"), f"{p}.function.arguments")))
    return out


def tools_of(body: JSON) -> list[Tool]:
    tools = body.get("tools")
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise BadRequest("'tools' must be an array", param="tools")
    out = []
    for i, tool in enumerate(tools):
        p = f"tools[{i}]"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise BadRequest(f"{p}: only function tools are supported for this model", param=p)
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise BadRequest(f"{p} needs function.name", param=p)
        description = fn.get("description")
        parameters = fn.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise BadRequest(f"{p}.function.parameters must be an object", param=p)
        out.append(Tool(fn["name"], description if isinstance(description, str) else None, parameters))
    return out


def tool_choice_of(body: JSON) -> tuple[str, str | None] | None:
    """("auto"|"required"|"none", None) or ("function", name); None when not given."""
    choice = body.get("tool_choice")
    if choice is None:
        return None
    if choice in ("auto", "required", "none"):
        return str(choice), None
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return "function", fn["name"]
    raise BadRequest("'tool_choice' must be auto, required, none or {type: function, function: {name}}",
                     param="tool_choice")


def stop_of(body: JSON) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise BadRequest("'stop' must be a string or an array of strings", param="stop")


def number_of(body: JSON, name: str) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"'{name}' must be a number", param=name)
    return value


def int_of(body: JSON, name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequest(f"'{name}' must be a positive integer", param=name)
    return value


def max_tokens_of(body: JSON) -> int | None:
    value = int_of(body, "max_completion_tokens")
    return value if value is not None else int_of(body, "max_tokens")


def embedding_texts(body: JSON, provider_name: str) -> list[str]:
    """Embeddings ``input`` as strings (token-id inputs are OpenAI-only)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadRequest(f"'input' must be a string or an array of strings for {provider_name} embeddings",
                     param="input")
