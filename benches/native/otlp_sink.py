#!/usr/bin/env python3
"""A stand-in OTLP/HTTP trace receiver for benchmarks: answers 200 to
`POST /v1/traces`, counts the requests, the bytes and the spans in them,
and throws the rest away. `GET /stats` answers the counts as JSON; on
SIGTERM or SIGINT they are printed as one JSON line on stdout.

Spans are counted by walking the protobuf wire format of
`ExportTraceServiceRequest` (resource_spans = 1 -> scope_spans = 2 ->
spans = 2) without decoding them; a JSON body (`application/json`) is
counted too, and a gzip body is unpacked first.

    benches/native/otlp_sink.py PORT
"""

import gzip
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

counts = {"requests": 0, "bytes": 0, "spans": 0, "unparsed": 0}
lock = threading.Lock()


def varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf, start, end):
    """(field number, start, end) of each length-delimited field in buf[start:end]."""
    i = start
    while i < end:
        key, i = varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            yield number, i, i + n
            i += n
        else:
            raise ValueError(f"wire type {wire}")


def count_protobuf(buf):
    spans = 0
    for f, s, e in fields(buf, 0, len(buf)):
        if f != 1:
            continue
        for f2, s2, e2 in fields(buf, s, e):
            if f2 != 2:
                continue
            spans += sum(1 for f3, _, _ in fields(buf, s2, e2) if f3 == 2)
    return spans


def count_json(buf):
    doc = json.loads(buf)
    return sum(len(ss.get("spans", [])) for rs in doc.get("resourceSpans", []) for ss in rs.get("scopeSpans", []))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path != "/v1/traces":
            self.answer(404, b"")
            return
        size = len(body)
        try:
            if self.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            json_body = self.headers.get("Content-Type", "").startswith("application/json")
            spans, unparsed = (count_json(body) if json_body else count_protobuf(body)), 0
        except Exception:
            spans, unparsed = 0, 1
        with lock:
            counts["requests"] += 1
            counts["bytes"] += size
            counts["spans"] += spans
            counts["unparsed"] += unparsed
        # An empty ExportTraceServiceResponse: full success.
        self.answer(200, b"", "application/x-protobuf")

    def do_GET(self):
        if self.path != "/stats":
            self.answer(404, b"")
            return
        with lock:
            self.answer(200, json.dumps(counts).encode(), "application/json")

    def answer(self, status, body, content_type="text/plain"):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()
    with lock:
        print(json.dumps(counts), flush=True)


main()
