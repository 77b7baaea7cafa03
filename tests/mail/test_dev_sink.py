"""The local SMTP sink `make run` starts (``python -m tests.fakes.smtp``): a real process that saves what the
proxy's SMTP client sends as .eml files, the folder the console's dev mailbox reads."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import devstack
from devstack import free_port, port_open
from webrana_proxy.envvalues import read_smtp_url
from webrana_proxy.mail.smtp import SmtpSender, build_message
from webrana_proxy.mail.templates import Rendered


async def test_the_dev_sink_saves_each_message_as_a_file(tmp_path: Path) -> None:
    port = free_port()
    folder = tmp_path / "mail"
    proc = subprocess.Popen([sys.executable, "-m", "tests.fakes.smtp", "--port", str(port), "--dir", str(folder)],
                            cwd=devstack.ROOT, start_new_session=True, stdout=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if port_open(port):
                break
            await asyncio.sleep(0.05)
        target = read_smtp_url({"U": f"smtp://127.0.0.1:{port}"}, "U")
        assert target is not None
        sender = SmtpSender(target, "Webrana <no-reply@webrana.local>")
        msg = build_message(Rendered("Halo", "isi\n", "<p>isi</p>"), mail_from=sender.mail_from,
                            recipient="dev@example.co.id", message_id="<1@webrana.local>", locale="id",
                            date=datetime.now(UTC))
        smtp = sender.connection()
        async with smtp:
            await sender.send(smtp, msg)
        [saved] = list(folder.glob("*.eml"))
        assert b"Message-ID: <1@webrana.local>" in saved.read_bytes()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_a_user_s_own_smtp_server_is_used_as_is() -> None:
    env = {"WEBRANA_SMTP_URL": "smtp://mail.example.co.id", "WEBRANA_CONSOLE_URL": "http://127.0.0.1:8081"}
    children: list[devstack.Child] = []
    assert devstack._start_mail_sink(env, children) == ["mail goes to your WEBRANA_SMTP_URL"]
    assert children == [] and env["WEBRANA_SMTP_URL"] == "smtp://mail.example.co.id"
