"""A minimal OTLP/HTTP trace receiver for the end-to-end tests.

    otlp_receiver.py PORT SPANS_FILE

Listens on 127.0.0.1:PORT (0: a free port) and prints the port it listens on
as its first line of stdout. Accepts `POST /v1/traces` with an
`application/x-protobuf` body (gzip-encoded or not), decodes it as an
`ExportTraceServiceRequest`, appends one JSON line per span to SPANS_FILE:

    {"trace_id", "span_id", "parent_span_id" ("" for a root), "name",
     "kind" (the OTLP enum: 2 server, 3 client, ...), "service_name",
     "attributes": {key: value}}

and answers 200 with an empty `ExportTraceServiceResponse`. Every request
it receives, on any path, is reported as one line on stdout
(`request METHOD PATH STATUS SPANS`), so that a test can tell that nothing
was sent at all.
"""

import gzip
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

PROTOBUF = "application/x-protobuf"


def any_value(v):
    """An OTLP `AnyValue` as plain JSON."""
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return attributes(v.kvlist_value.values)
    if which == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, which)


def attributes(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def spans_of(request):
    """The request's spans, each as the JSON object written to the file."""
    for resource_spans in request.resource_spans:
        service = attributes(resource_spans.resource.attributes).get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": int(span.kind),
                    "service_name": service,
                    "attributes": attributes(span.attributes),
                }


class Receiver(BaseHTTPRequestHandler):
    # HTTP/1.1 so that the exporter may keep its connection; every answer
    # carries a Content-Length.
    protocol_version = "HTTP/1.1"
    out_path = None
    lock = threading.Lock()

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/v1/traces":
            self.read_body()
            return self.answer(404, b"not found", "text/plain", 0)
        body = self.read_body()
        content_type = self.headers.get("Content-Type", "").split(";", 1)[0].strip()
        if content_type != PROTOBUF:
            return self.answer(415, b"only application/x-protobuf", "text/plain", 0)
        try:
            if self.headers.get("Content-Encoding", "").strip().lower() == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
        except Exception as e:  # a bad body is the sender's fault: say so, keep serving
            return self.answer(400, f"cannot decode: {e}".encode(), "text/plain", 0)
        lines = [json.dumps(s, sort_keys=True) + "\n" for s in spans_of(request)]
        with self.lock, open(self.out_path, "a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
        self.answer(200, ExportTraceServiceResponse().SerializeToString(), PROTOBUF, len(lines))

    def do_GET(self):
        self.answer(404, b"not found", "text/plain", 0)

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").strip().lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip(), 16)
                if size == 0:
                    # The trailer section, up to its empty line.
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def answer(self, status, body, content_type, spans):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        with self.lock:
            print(f"request {self.command} {self.path} {status} {spans}", flush=True)

    def log_message(self, format, *args):
        # The test reads stdout; the default access log would only add noise.
        pass


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: otlp_receiver.py PORT SPANS_FILE")
    Receiver.out_path = sys.argv[2]
    open(Receiver.out_path, "a").close()
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
