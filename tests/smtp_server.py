#!/usr/bin/env python3
"""A real SMTP server for onboard's tests (Debian python3-aiosmtpd).

Every message received is stored twice in --dir: N.eml as received, and N.json as Python's
email package parses it (headers, body parts, attachments, envelope, the authenticated user), so
the Rust tests check the MIME structure with an independent parser.

    smtp_server.py --port 2525 --dir out/ [--tls CERT KEY] [--auth USER:PASSWORD] [--implicit-tls]
                   [--eml-only]

With --eml-only it stores N.eml and nothing else (the benchmark's server: the parse would
dominate the time being measured).

With --tls the server offers STARTTLS and requires it; with --auth it requires AUTH (which
aiosmtpd only allows over TLS). With --implicit-tls it speaks TLS from the first byte (smtps).
It runs until killed.
"""

import argparse
import email
import email.policy
import json
import os
import ssl
import threading
import time

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Store:
    def __init__(self, directory, eml_only=False):
        self.directory = directory
        self.eml_only = eml_only
        # After a restart, number on from the messages already stored.
        self.count = len([f for f in os.listdir(directory) if f.endswith(".eml")])
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.count += 1
            n = self.count
        raw = envelope.original_content or envelope.content
        base = os.path.join(self.directory, f"{n:04d}")
        if self.eml_only:
            with open(base + ".eml", "wb") as f:
                f.write(raw)
            return "250 Message accepted for delivery"
        message = email.message_from_bytes(raw, policy=email.policy.default)
        parts, attachments = [], []
        for part in message.walk():
            if part.is_multipart():
                continue
            content = part.get_content()
            if isinstance(content, bytes):
                content = content.decode("utf-8", "replace")
            if part.get_filename():
                attachments.append({"filename": part.get_filename(), "content": content})
            else:
                parts.append({"content_type": part.get_content_type(), "content": content})
        auth = getattr(session, "auth_data", None)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "auth_user": auth.login.decode() if isinstance(auth, LoginPassword) else None,
            "tls": session.ssl is not None,
            "headers": {k: str(v) for k, v in message.items()},
            "content_type": message.get_content_type(),
            "parts": parts,
            "attachments": attachments,
        }
        with open(base + ".eml.tmp", "wb") as f:
            f.write(raw)
        os.rename(base + ".eml.tmp", base + ".eml")
        with open(base + ".json.tmp", "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False, indent=1)
        os.rename(base + ".json.tmp", base + ".json")
        return "250 Message accepted for delivery"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--auth")
    parser.add_argument("--implicit-tls", action="store_true")
    parser.add_argument("--eml-only", action="store_true", help="store N.eml only (benchmarks)")
    args = parser.parse_args()

    kwargs = {}
    context = None
    if args.tls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.tls[0], args.tls[1])
        if not args.implicit_tls:
            kwargs.update(tls_context=context, require_starttls=True)
    if args.auth:
        user, password = args.auth.split(":", 1)

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and auth_data.login.decode() == user
                and auth_data.password.decode() == password
            )
            return AuthResult(success=ok, auth_data=auth_data if ok else None)

        kwargs.update(authenticator=authenticator, auth_required=True)
        if args.implicit_tls:
            # The socket is TLS from the first byte, but aiosmtpd only knows of STARTTLS.
            kwargs.update(auth_require_tls=False)
    controller = Controller(
        Store(args.dir, args.eml_only),
        hostname="127.0.0.1",
        port=args.port,
        ssl_context=context if args.implicit_tls else None,
        server_hostname="localhost",
        **kwargs,
    )
    controller.start()
    try:
        while True:
            time.sleep(3600)
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
