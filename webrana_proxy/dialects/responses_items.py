"""A stored response's input items as OpenAI lists them (``GET /v1/responses/{id}/input_items``). Pure.

The items a translated-lane response was made from (the earlier turns of a ``previous_response_id`` chain, then
its own ``input``) are stored with it (``gateway.responses_store``). Each gets an ``id`` when it is stored (the
client's own when it gave one), so the list pages by id as OpenAI's does: ``limit`` 1-100 (default 20),
``order`` ``desc`` (default: newest first) or ``asc``, ``after`` an item id; the answer is
``{object: "list", data, first_id, last_id, has_more}``. Messages are listed as OpenAI lists them: ``type``
``message``, content as parts, ``status`` ``completed``. ``include`` is accepted: stored items are whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from webrana_proxy.errors import BadRequest
from webrana_proxy.providers.base import JSON

DEFAULT_LIMIT = 20  # OpenAI's default page size
MAX_LIMIT = 100  # OpenAI's largest page
ORDERS = ("asc", "desc")
ID_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "custom_tool_call": "ctc",
               "custom_tool_call_output": "ctco", "reasoning": "rs"}  # OpenAI's id prefix per item type


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int = DEFAULT_LIMIT
    order: str = "desc"
    after: str | None = None


def page_query(query: Mapping[str, str]) -> PageQuery:
    """``limit``, ``order`` and ``after`` from the query string; a 400 naming the one that is wrong."""
    limit = DEFAULT_LIMIT
    text = query.get("limit")
    if text is not None:
        if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
            raise BadRequest(f"limit: must be an integer from 1 to {MAX_LIMIT}", param="limit")
        limit = int(text)
    order = query.get("order", "desc")
    if order not in ORDERS:
        raise BadRequest("order: must be 'asc' or 'desc'", param="order")
    after = query.get("after") or None
    return PageQuery(limit, order, after)


def with_ids(items: list[JSON], response_id: str) -> list[JSON]:
    """``items`` with an ``id`` on each (a new dict where one was missing: ``<prefix>_<response>_in<position>``);
    the client's own ids are kept."""
    suffix = response_id.removeprefix("resp_")
    out: list[JSON] = []
    for i, item in enumerate(items):
        if isinstance(item.get("id"), str) and item["id"]:
            out.append(item)
        else:
            prefix = ID_PREFIXES.get(str(item.get("type", "message")), "item")
            out.append({**item, "id": f"{prefix}_{suffix}_in{i}"})
    return out


def _listed(item: JSON) -> JSON:
    """A message as OpenAI lists it (``type``, content parts, ``status``); other items as they were given."""
    if item.get("type", "message") != "message":
        return item
    out = {"type": "message", **item}
    content = out.get("content")
    if isinstance(content, str):
        kind = "output_text" if out.get("role") == "assistant" else "input_text"
        out["content"] = [{"type": kind, "text": content}]
    out.setdefault("status", "completed")
    return out


def page(items: list[JSON], response_id: str, query: PageQuery) -> JSON:
    """One page of ``items`` (in the order they were given to the model) as OpenAI's list object."""
    ordered = with_ids(items, response_id)
    if query.order == "desc":
        ordered.reverse()
    start = 0
    if query.after is not None:
        ids = [item["id"] for item in ordered]
        if query.after not in ids:
            raise BadRequest(f"after: no input item '{query.after}' in response '{response_id}'", param="after")
        start = ids.index(query.after) + 1
    data = [_listed(item) for item in ordered[start:start + query.limit]]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": start + query.limit < len(ordered)}
