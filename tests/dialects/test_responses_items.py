"""A stored response's input items as OpenAI lists them, offline: ids given once and kept, pages by id in either
order, and a 400 naming a wrong ``limit``, ``order`` or ``after``."""

from __future__ import annotations

import pytest

from webrana_proxy.dialects.responses_items import page, page_query, with_ids
from webrana_proxy.errors import BadRequest

RID = "resp_wbr_ab12"
ITEMS = [{"role": "user", "content": "satu"}, {"id": "fc_client", "type": "function_call", "call_id": "c1",
                                                "name": "f", "arguments": "{}"},
         {"type": "function_call_output", "call_id": "c1", "output": "ok"}]


def test_ids_are_filled_once_and_the_clients_own_are_kept() -> None:
    named = with_ids(ITEMS, RID)
    assert [item["id"] for item in named] == ["msg_wbr_ab12_in0", "fc_client", "fco_wbr_ab12_in2"]
    assert with_ids(named, "resp_wbr_other") == named  # stored ids never change
    assert "id" not in ITEMS[0]  # the request itself is not touched


def test_pages_newest_first_by_default_then_after_the_last_id() -> None:
    first = page(ITEMS, RID, page_query({"limit": "2"}))
    assert [i["id"] for i in first["data"]] == ["fco_wbr_ab12_in2", "fc_client"]
    assert (first["first_id"], first["last_id"], first["has_more"]) == ("fco_wbr_ab12_in2", "fc_client", True)
    rest = page(ITEMS, RID, page_query({"limit": "2", "after": "fc_client"}))
    assert [i["id"] for i in rest["data"]] == ["msg_wbr_ab12_in0"] and rest["has_more"] is False
    assert rest["data"][0] == {"type": "message", "role": "user", "id": "msg_wbr_ab12_in0", "status": "completed",
                               "content": [{"type": "input_text", "text": "satu"}]}
    asc = page(ITEMS, RID, page_query({"order": "asc"}))
    assert [i["id"] for i in asc["data"]] == ["msg_wbr_ab12_in0", "fc_client", "fco_wbr_ab12_in2"]
    empty = page([], RID, page_query({}))
    assert (empty["data"], empty["first_id"], empty["last_id"], empty["has_more"]) == ([], None, None, False)


@pytest.mark.parametrize(("query", "param"), [({"limit": "0"}, "limit"), ({"limit": "101"}, "limit"),
                                              ({"limit": "x"}, "limit"), ({"order": "up"}, "order")])
def test_a_wrong_parameter_is_a_400_naming_it(query: dict[str, str], param: str) -> None:
    with pytest.raises(BadRequest) as caught:
        page_query(query)
    assert caught.value.param == param


def test_an_unknown_after_is_a_400_naming_it() -> None:
    with pytest.raises(BadRequest) as caught:
        page(ITEMS, RID, page_query({"after": "msg_nope"}))
    assert caught.value.param == "after"
