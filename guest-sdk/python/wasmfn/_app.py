"""The app: operations declared once, dispatched per request, described for
the host's OpenAPI document."""

import inspect
import json
import re
import sys
import traceback
import typing

from ._http import HTTPError, Request, Response
from ._schema import DecodeError, coerce_text, from_json, schema_of

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
            "required": ["code", "message"],
        }
    },
    "required": ["error"],
}


def _is_optional_type(tp):
    if isinstance(tp, dict):
        return False
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return type(None) in typing.get_args(tp)


class Operation:
    """One method + path of the app, with what it declares."""

    def __init__(self, method, path, handler, *, summary, description, tags, params, query, body, response,
                 status, responses, operation_id, deprecated, content_type):
        if method not in _METHODS:
            raise ValueError(f"unknown HTTP method `{method}`; use one of {', '.join(_METHODS)}")
        if not path.startswith("/"):
            raise ValueError(f"operation path `{path}` must start with `/`")
        self.method = method
        self.path = path
        self.handler = handler
        doc = inspect.getdoc(handler) or ""
        first, _, rest = doc.partition("\n")
        self.summary = summary if summary is not None else (first.strip() or None)
        self.description = description if description is not None else (rest.strip() or None)
        self.tags = list(tags or [])
        self.path_params = _PARAM.findall(path)
        self.params = dict(params or {})
        self.query = dict(query or {})
        self.body = body
        self.content_type = content_type
        if response is None:
            ret = typing.get_type_hints(handler, include_extras=True).get("return") if callable(handler) else None
            if ret is not None and ret is not Response and ret is not type(None):
                response = ret
        self.response = response
        self.status = status
        self.responses = dict(responses or {})
        self.operation_id = operation_id or getattr(handler, "__name__", None)
        self.deprecated = deprecated
        unknown = sorted(set(self.params) - set(self.path_params))
        self.prefix_params = unknown  # parameters of the mount point (`users/[id]/`), typed but not declared

    def matches(self, path):
        pattern = "^" + _PARAM.sub("[^/]+", re.escape(self.path).replace(r"\{", "{").replace(r"\}", "}")) + "$"
        return re.match(pattern, path) is not None

    def describe(self, components):
        op = {}
        if self.operation_id:
            op["operationId"] = self.operation_id
        if self.summary:
            op["summary"] = self.summary
        if self.description:
            op["description"] = self.description
        if self.tags:
            op["tags"] = self.tags
        if self.deprecated:
            op["deprecated"] = True
        parameters = []
        for name in self.path_params:
            parameters.append({
                "name": name,
                "in": "path",
                "required": True,
                "schema": schema_of(self.params.get(name, str), components),
            })
        for name, tp in self.query.items():
            schema = schema_of(tp, components)
            required = not _is_optional_type(tp) and "default" not in schema
            parameters.append({"name": name, "in": "query", "required": required, "schema": schema})
        if parameters:
            op["parameters"] = parameters
        if self.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {self.content_type: {"schema": schema_of(self.body, components)}},
            }
        responses = {}
        ok = str(self.status or 200)
        if self.response is not None:
            responses[ok] = _response_doc(self.response, components, "Success.")
        for status, spec in self.responses.items():
            responses[str(status)] = _response_doc(spec, components, None, error=int(str(status)[0]) >= 4)
        if not responses:
            responses["default"] = {"description": "Response."}
        op["responses"] = responses
        return op


def _response_doc(spec, components, default_description, error=False):
    description = default_description
    if isinstance(spec, tuple):
        spec, description = spec
    elif isinstance(spec, str):
        description, spec = spec, None
    doc = {"description": description or ("Error." if error else "Success.")}
    if spec is None and error:
        components.setdefault("Error", _ERROR_SCHEMA)
        doc["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    elif spec is str:
        doc["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif spec is bytes:
        doc["content"] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    elif spec is not None:
        doc["content"] = {"application/json": {"schema": schema_of(spec, components)}}
    return doc


class App:
    """A function's operations. Declare them with `@app.get(path, ...)`,
    `@app.post(...)` and friends; paths are relative to where the function
    is mounted (`/` is the mount point, `/{id}` one segment below it)."""

    def __init__(self, title=None, description=None, version=None):
        self.title = title
        self.description = description
        self.version = version
        self.operations = []

    def route(self, method, path, *, summary=None, description=None, tags=None, params=None, query=None,
              body=None, response=None, status=None, responses=None, operation_id=None, deprecated=False,
              content_type="application/json"):
        """Declares `handler(req)` for `method path`.

        - `params`: path (and mount-point) parameter types, `{"id": int}`;
          undeclared ones are strings.
        - `query`: query parameter types; `Optional[...]` or a `default` makes
          one optional.
        - `body`: the JSON body's type (a dataclass, a JSON Schema dict...);
          the decoded value is `req.data`.
        - `response` (or the handler's return annotation) and `status`: the
          success response; `responses`: others, `{404: "No such item"}`.
        """
        def register(handler):
            op = Operation(method.lower(), path, handler, summary=summary, description=description, tags=tags,
                           params=params, query=query, body=body, response=response, status=status,
                           responses=responses, operation_id=operation_id, deprecated=deprecated,
                           content_type=content_type)
            for other in self.operations:
                if other.method == op.method and other.path == op.path:
                    raise ValueError(f"`{op.method.upper()} {op.path}` is declared twice")
            self.operations.append(op)
            return handler
        return register

    def get(self, path, **kw):
        return self.route("get", path, **kw)

    def post(self, path, **kw):
        return self.route("post", path, **kw)

    def put(self, path, **kw):
        return self.route("put", path, **kw)

    def patch(self, path, **kw):
        return self.route("patch", path, **kw)

    def delete(self, path, **kw):
        return self.route("delete", path, **kw)

    def openapi(self):
        """The OpenAPI fragment this app declares, as a dict."""
        components = {}
        paths = {}
        for op in self.operations:
            paths.setdefault(op.path, {})[op.method] = op.describe(components)
        fragment = {"paths": paths}
        if components:
            fragment["components"] = {"schemas": components}
        info = {k: v for k, v in (("title", self.title), ("description", self.description),
                                  ("version", self.version)) if v}
        if info:
            fragment["info"] = info
        return fragment

    def describe(self):
        """The fragment as the host's `describe` wants it: JSON text."""
        return json.dumps(self.openapi(), separators=(",", ":"))

    def find(self, method, path, declared_path=None):
        method = method.lower()
        if method == "head":
            method = "get"
        candidates = [op for op in self.operations if op.method == method]
        if declared_path is not None:
            for op in candidates:
                if op.path == declared_path:
                    return op
            return None
        matching = [op for op in candidates if op.matches(path)]
        matching.sort(key=lambda op: len(op.path_params))
        return matching[0] if matching else None

    def handle(self, req):
        """Runs the operation `req` asks for and returns a `Response`."""
        try:
            op = self.find(req.method, req.path, req.declared_path)
            if op is None:
                raise HTTPError(404, f"no operation for `{req.method} {req.path}`")
            _bind(op, req)
            return _to_response(op.handler(req), op)
        except HTTPError as e:
            return e.to_response()
        except DecodeError as e:
            detail = [{"loc": list(e.loc), "msg": e.msg, "type": "value_error"}]
            return Response.json({"error": {"code": "validation_error", "message": "the request is not valid",
                                            "details": detail}}, status=422)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            rid = req.request_id or "?"
            return Response.json({"error": {"code": "internal",
                                            "message": f"the function failed; see the log for request {rid}"}},
                                 status=500)


def _bind(op, req):
    for name, text in req.raw_params.items():
        if name in op.params:
            req.params[name] = coerce_text(op.params[name], text, ("path", name))
    for name, tp in op.query.items():
        if name in req.query:
            req.query[name] = coerce_text(tp, req.query[name], ("query", name))
        else:
            schema = tp if isinstance(tp, dict) else None
            default = schema.get("default") if schema else None
            if default is None and not isinstance(tp, dict):
                while typing.get_origin(tp) is typing.Annotated:
                    for meta in typing.get_args(tp)[1:]:
                        default = getattr(meta, "schema", {}).get("default", default)
                    tp = typing.get_args(tp)[0]
            req.query[name] = default
    if op.body is not None:
        if op.content_type == "application/json":
            req.data = from_json(op.body, req.json())
        else:
            req.data = req.body


def _to_response(result, op):
    status = op.status or 200
    headers = None
    if isinstance(result, tuple):
        result, status, *rest = result
        headers = rest[0] if rest else None
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(b"", 204 if op.status is None else status, headers)
    if isinstance(result, str):
        return Response.text(result, status, headers)
    if isinstance(result, (bytes, bytearray)):
        return Response(bytes(result), status, headers, "application/octet-stream")
    return Response.json(result, status, headers)
