#!/usr/bin/python3
"""An aiosmtpd receiver for cartero's interop tests.

Listens on 127.0.0.1 (port 0 unless --port is given), prints "LISTENING <port>" on stdout once
bound, and writes every accepted message as DIR/N.eml (the exact bytes received, after
dot-unstuffing) with its envelope in DIR/N.json. The .json is written first and the .eml is
renamed into place last, so an .eml file always means a complete message.

Run with /usr/bin/python3: Debian's python3-aiosmtpd is installed for that interpreter.
"""

import argparse
import asyncio
import itertools
import json
import os
import sys

from aiosmtpd.smtp import SMTP


class DirHandler:
    def __init__(self, directory, delay):
        self.directory = directory
        self.delay = delay
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        if self.delay > 0:
            # A slow receiver: the client must wait for this reply.
            await asyncio.sleep(self.delay)
        n = next(self.counter)
        base = os.path.join(self.directory, "%06d" % n)
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "helo": session.host_name,
            "mail_options": envelope.mail_options,
        }
        with open(base + ".json", "w") as f:
            json.dump(meta, f)
        with open(base + ".tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".tmp", base + ".eml")
        return "250 2.0.0 stored as %06d" % n


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0)
    args = parser.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    handler = DirHandler(args.dir, args.delay)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(
            handler,
            hostname="aiosmtpd.test",
            decode_data=False,
            enable_SMTPUTF8=True,
        ),
        host="127.0.0.1",
        port=args.port,
    )
    port = server.sockets[0].getsockname()[1]
    print("LISTENING %d" % port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
