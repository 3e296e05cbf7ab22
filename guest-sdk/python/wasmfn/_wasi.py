"""The component's exports: `wasmfn:function/handler` (a request taken
whole, in one call), `wasi:http/incoming-handler` (for responses that
stream) and `wasmfn:function/metadata`, all served by one `App`, built once
per instance. Only importable inside a component built by `wasmfn build`
(it needs the generated bindings)."""

import sys

from componentize_py_types import Err, Ok
from wit_world.exports import handler
from wit_world.imports import streams, types

from . import config
from ._http import Request

_CHUNK = 4096

_METHOD_NAMES = {
    types.Method_Get: "GET",
    types.Method_Head: "HEAD",
    types.Method_Post: "POST",
    types.Method_Put: "PUT",
    types.Method_Delete: "DELETE",
    types.Method_Connect: "CONNECT",
    types.Method_Options: "OPTIONS",
    types.Method_Trace: "TRACE",
    types.Method_Patch: "PATCH",
}


def _method(m):
    if isinstance(m, types.Method_Other):
        return m.value
    return _METHOD_NAMES[type(m)]


def _reader(request):
    def read():
        body = request.consume()
        stream = body.stream()
        chunks = []
        try:
            while True:
                try:
                    chunks.append(stream.blocking_read(65536))
                except Err as e:
                    if isinstance(e.value, streams.StreamError_Closed):
                        break
                    raise
        finally:
            stream.__exit__(None, None, None)
        types.IncomingBody.finish(body).__exit__(None, None, None)
        return b"".join(chunks)
    return read


def _send(response, out):
    fields = types.Fields.from_list([(k, v.encode("latin-1")) for k, v in response.headers])
    outgoing = types.OutgoingResponse(fields)
    try:
        outgoing.set_status_code(response.status)
    except Err:
        outgoing.set_status_code(500)
    body = outgoing.body()
    types.ResponseOutparam.set(out, Ok(outgoing))
    stream = body.write()
    try:
        for piece in response.chunks():
            view = memoryview(piece)
            for i in range(0, len(view), _CHUNK):
                stream.blocking_write_and_flush(bytes(view[i:i + _CHUNK]))
    except Err:
        # The client went away or the host cut the response: stop writing.
        stream.__exit__(None, None, None)
        return
    stream.__exit__(None, None, None)
    types.OutgoingBody.finish(body, None)


def exports_for(app):
    """The three export classes componentize-py looks for, bound to `app`."""
    # A response whose body streams, made by `Handler.handle` for the
    # request the host gives `IncomingHandler.handle` next, on this
    # instance: (request id, response).
    pending = []

    class Handler:
        def handle(self, method, path_with_query, headers, body):
            config._running = True
            req = Request(method, path_with_query or "/", headers, body=body)
            try:
                response = app.handle(req)
                if isinstance(response.body, (bytes, bytearray, memoryview)):
                    return handler.Response(
                        response.status,
                        [(k, v.encode("latin-1")) for k, v in response.headers],
                        bytes(response.body),
                    )
                pending.append((req.request_id, response))
                return None
            finally:
                sys.stdout.flush()
                sys.stderr.flush()

    class IncomingHandler:
        def handle(self, request, response_out):
            config._running = True
            fields = request.headers()
            response = None
            if pending:
                rid, made = pending.pop()
                pending.clear()
                ids = fields.get("x-request-id")
                if ids and ids[0].decode("latin-1") == rid:
                    response = made
            if response is None:
                req = Request(
                    _method(request.method()),
                    request.path_with_query() or "/",
                    fields.entries(),
                    read_body=_reader(request),
                )
                response = app.handle(req)
            try:
                _send(response, response_out)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()

    class Metadata:
        def describe(self):
            config._running = True
            return app.describe()

    return IncomingHandler, Metadata, Handler
