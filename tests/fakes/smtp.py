"""A local SMTP server (aiosmtpd) that keeps every message it accepts: in memory for tests, and as ``.eml``
files in a folder for ``make run`` / ``make demo`` (``.webrana/mail/``, which the console's dev mailbox lists).

Test controls: ``refuse`` (recipients answered 550), ``login`` (require AUTH with this user and password;
aiosmtpd allows it without TLS here),
``delay`` (seconds each DATA waits before its answer: a slow server), ``drop_after_data`` (for the next N
messages: keep the message, then close the connection without answering, as a server that crashed after
accepting it, so the sender cannot know it arrived).

CLI: ``python -m tests.fakes.smtp --port P --dir .webrana/mail``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import itertools
import re
import signal
import sys
import time
import warnings
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

LINK_RE = re.compile(r"https?://[^\s<>\"']+")


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    raw: bytes
    login: str | None
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.message = parsed

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])

    def part(self, subtype: str) -> str:
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None, f"no text/{subtype} part"
        content: str = body.get_content()  # type: ignore[attr-defined]
        return content

    @property
    def text(self) -> str:
        return self.part("plain")

    @property
    def html(self) -> str:
        return self.part("html")

    def links(self) -> list[str]:
        return LINK_RE.findall(self.text)


class MailSink:
    def __init__(self, directory: Path | None = None, *, login: tuple[str, str] | None = None) -> None:
        self.directory = directory
        self.login = login
        self.received: list[Received] = []
        self.delay = 0.0
        self.drop_after_data = 0
        self.refuse: set[str] = set()  # recipients answered 550 (a mailbox that does not exist)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()
        self._names = itertools.count(1)

    # --- aiosmtpd handler hooks -------------------------------------------------------------------------------

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        item = Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw, login)
        if self.directory is not None:
            await asyncio.to_thread(self._save, raw)
        async with self._arrived:
            self.received.append(item)
            self._arrived.notify_all()
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.drop_after_data > 0:
            self.drop_after_data -= 1
            assert server.transport is not None
            server.transport.abort()  # kept it, never said so
            return "421 gone"
        return "250 OK: kept"

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (isinstance(auth_data, LoginPassword) and self.login is not None
              and (auth_data.login.decode(), auth_data.password.decode()) == self.login)
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)  # a failure: 535

    def _save(self, raw: bytes) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y%m%d-%H%M%S')}-{next(self._names):04d}.eml"
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(raw)
        tmp.replace(self.directory / name)  # the mailbox never sees half a file

    # --- running ----------------------------------------------------------------------------------------------

    def _protocol(self) -> SMTP:
        with warnings.catch_warnings():  # AUTH without TLS: aiosmtpd warns; on loopback in tests it is the point
            warnings.simplefilter("ignore", UserWarning)
            return SMTP(self, hostname="webrana-mail-sink",
                        authenticator=self._authenticate if self.login else None,
                        auth_required=self.login is not None, auth_require_tls=False,
                        loop=asyncio.get_running_loop())

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def __aenter__(self) -> MailSink:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        creds = f"{self.login[0]}:{self.login[1]}@" if self.login else ""
        return f"smtp://{creds}127.0.0.1:{self.port}"

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Until at least ``count`` messages arrived (a real deadline, not a sleep)."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.received) >= count), timeout)
        return list(self.received)

    def to(self, address: str) -> list[Received]:
        return [r for r in self.received if address.lower() in (a.lower() for a in r.recipients)]


async def _serve(args: argparse.Namespace) -> None:
    sink = MailSink(Path(args.dir))
    port = await sink.start(args.host, args.port)
    print(f"mail sink listening on smtp://{args.host}:{port}, saving to {args.dir}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sink.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes.smtp",
                                     description="A local SMTP sink that saves every message as an .eml file.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (printed on start)")
    parser.add_argument("--dir", required=True, help="folder for the .eml files, e.g. .webrana/mail")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
