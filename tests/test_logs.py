"""The log writer: lines are formatted where they are logged, then written in order, in batches, by its thread."""

from __future__ import annotations

import io
import logging
import time

import orjson
import pytest

from webrana_proxy import logs
from webrana_proxy.logs import JsonFormatter, _BatchingHandler


def writer() -> tuple[_BatchingHandler, io.StringIO, logging.Logger]:
    out = io.StringIO()
    target: logging.StreamHandler[io.StringIO] = logging.StreamHandler(out)
    target.setFormatter(JsonFormatter())
    handler = _BatchingHandler(target)
    logger = logging.Logger("test.logs")
    logger.addHandler(handler)
    return handler, out, logger


def lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_lines_are_written_in_order_with_their_fields_and_stop_writes_what_waits() -> None:
    handler, out, logger = writer()
    for i in range(1000):
        logger.info("call", extra={"n": i})
    handler.stop()
    got = lines(out)
    assert [line["n"] for line in got] == list(range(1000))
    assert got[0]["msg"] == "call" and got[0]["level"] == "info" and got[0]["logger"] == "test.logs"


def test_an_info_line_waits_for_its_batch_and_a_warning_is_written_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "BATCH_INTERVAL", 3600.0)  # a batch would come only in an hour
    handler, out, logger = writer()
    try:
        logger.info("quiet")
        time.sleep(0.2)
        assert lines(out) == []  # waits for its batch
        logger.warning("loud")  # wakes the writer: both go out now, in order
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(lines(out)) < 2:
            time.sleep(0.005)
        assert [line["msg"] for line in lines(out)] == ["quiet", "loud"]
    finally:
        handler.stop()


def test_a_line_shows_its_values_as_they_were_when_it_was_logged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logs, "BATCH_INTERVAL", 3600.0)  # the writer thread waits until stop
    handler, out, logger = writer()
    attempts = ["openai"]
    logger.info("call", extra={"attempts": attempts})
    attempts.append("anthropic")  # the caller goes on with its objects; the waiting line does not change
    handler.stop()
    assert [line["attempts"] for line in lines(out)] == [["openai"]]


def test_a_record_that_cannot_be_formatted_does_not_stop_the_others() -> None:
    handler, out, logger = writer()
    logger.info("bad %d", "not a number")  # the message's own arguments do not fit: logging reports it on stderr
    logger.info("good")
    handler.stop()
    assert [line["msg"] for line in lines(out)] == ["good"]
