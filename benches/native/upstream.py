#!/usr/bin/env python3
"""A stand-in upstream for functions that call out, in benchmarks: an
asyncio HTTP/1.1 server on 127.0.0.1 that reads each request (its body
too, by Content-Length) and answers 200 `pong`, keeping the connection
when the client does. On SIGTERM or SIGINT it prints how many requests it
answered, as one JSON line on stdout.

    benches/native/upstream.py PORT
"""

import asyncio
import json
import signal
import sys

answered = 0
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n"


async def serve(reader, writer):
    global answered
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            close = headers.get("connection", "").lower() == "close" or lines[0].endswith("HTTP/1.0")
            writer.write(RESPONSE + (b"Connection: close\r\n" if close else b"") + b"\r\npong")
            await writer.drain()
            answered += 1
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    async with server:
        await stopped.wait()
    print(json.dumps({"answered": answered}), flush=True)


asyncio.run(main())
