"""Requests and responses, independent of the WebAssembly plumbing (so a
handler can be unit-tested with plain Python)."""

import json
import urllib.parse

from ._schema import to_json


class HTTPError(Exception):
    """Raise to answer with an error: `{"error": {"code", "message"}}`.

    `HTTPError(404, "no item 7")` gives code `not_found`; pass `code=` to
    name it yourself and `details=` for anything structured.
    """

    _CODES = {
        400: "bad_request",
        401: "unauthorized",
        403: "forbidden",
        404: "not_found",
        409: "conflict",
        422: "validation_error",
        429: "too_many_requests",
        500: "internal",
        503: "service_unavailable",
    }

    def __init__(self, status, message, *, code=None, details=None, headers=None):
        super().__init__(message)
        self.status = int(status)
        self.message = str(message)
        self.code = code or self._CODES.get(self.status, f"http_{self.status}")
        self.details = details
        self.headers = dict(headers or {})

    def to_response(self):
        error = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = to_json(self.details)
        return Response.json({"error": error}, status=self.status, headers=self.headers)


class Response:
    """A status, headers and a body (bytes, or an iterable of bytes streamed
    piece by piece)."""

    def __init__(self, body=b"", status=200, headers=None, content_type=None):
        if isinstance(body, str):
            body = body.encode()
            content_type = content_type or "text/plain; charset=utf-8"
        self.status = int(status)
        self.headers = [(k.lower(), str(v)) for k, v in dict(headers or {}).items()]
        if content_type and not any(k == "content-type" for k, _ in self.headers):
            self.headers.append(("content-type", content_type))
        self.body = body

    @classmethod
    def json(cls, value, status=200, headers=None):
        data = json.dumps(to_json(value), separators=(",", ":"), ensure_ascii=False).encode()
        return cls(data, status, headers, "application/json")

    @classmethod
    def text(cls, text, status=200, headers=None):
        return cls(str(text).encode(), status, headers, "text/plain; charset=utf-8")

    def header(self, name):
        for k, v in self.headers:
            if k == name.lower():
                return v
        return None

    def chunks(self):
        if isinstance(self.body, (bytes, bytearray, memoryview)):
            yield bytes(self.body)
        else:
            for piece in self.body:
                yield piece.encode() if isinstance(piece, str) else bytes(piece)


class Request:
    """One request. `params` holds the path parameters the host matched
    (converted to the declared types), `query` the first value of each query
    parameter, `data` the body decoded to the declared type."""

    def __init__(self, method, path_with_query="/", headers=(), body=b"", read_body=None):
        self.method = method.upper()
        path, _, self.query_string = path_with_query.partition("?")
        self.path = path or "/"
        self.headers = {}
        for name, value in headers:
            name = name.lower()
            value = value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else str(value)
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value
        self.raw_params = {
            k[len("x-fn-param-") :]: v for k, v in self.headers.items() if k.startswith("x-fn-param-")
        }
        self.params = dict(self.raw_params)
        self._query_pairs = urllib.parse.parse_qsl(self.query_string, keep_blank_values=True)
        self.query = {}
        for k, v in self._query_pairs:
            self.query.setdefault(k, v)
        self._body = body if read_body is None else None
        self._read_body = read_body
        self.data = None

    @property
    def route(self):
        """The route pattern the host matched, e.g. `/users/{id}`."""
        return self.headers.get("x-fn-route")

    @property
    def declared_path(self):
        """The operation path as this function declared it, e.g. `/{id}`."""
        return self.headers.get("x-fn-path")

    @property
    def request_id(self):
        return self.headers.get("x-request-id")

    def query_all(self, name):
        """Every value of a repeated query parameter."""
        return [v for k, v in self._query_pairs if k == name]

    @property
    def body(self):
        """The whole body, read on first use."""
        if self._body is None:
            self._body = self._read_body()
            self._read_body = None
        return self._body

    def text(self):
        return self.body.decode("utf-8")

    def json(self):
        """The body parsed as JSON; invalid JSON is a 400."""
        try:
            return json.loads(self.body or b"null")
        except ValueError as e:
            raise HTTPError(400, f"the body is not valid JSON: {e}", code="invalid_json") from None
