"""JSON Schema from Python types, and values to and from JSON by type.

Supported: `str`, `int`, `float`, `bool`, `None`, `list[T]`, `dict[str, T]`,
`Optional[T]` / `T | None`, `Literal[...]`, `Enum` subclasses, dataclasses
(named schemas under `components/schemas`; a class attribute
`json_schema_extra = {...}` is merged into the schema, for rules across
fields), `Annotated[T, Field(...)]` for constraints, and plain dicts taken
as JSON Schema as they are.
"""

import dataclasses
import enum
import types
import typing

_PRIMITIVES = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}

_FIELD_KEYWORDS = {
    "min_length": "minLength",
    "max_length": "maxLength",
    "pattern": "pattern",
    "ge": "minimum",
    "le": "maximum",
    "gt": "exclusiveMinimum",
    "lt": "exclusiveMaximum",
    "multiple_of": "multipleOf",
    "min_items": "minItems",
    "max_items": "maxItems",
    "unique_items": "uniqueItems",
    "format": "format",
    "description": "description",
    "title": "title",
    "default": "default",
    "deprecated": "deprecated",
}


class Field:
    """Constraints and documentation for a value, used inside `Annotated`.

    `Annotated[str, Field(min_length=1, max_length=40)]`,
    `Annotated[int, Field(ge=1, description="Page number")]`. Names follow
    pydantic; `examples=[...]` and any other JSON Schema keyword may be given
    with `extra={...}`.
    """

    def __init__(self, *, examples=None, extra=None, **constraints):
        unknown = sorted(set(constraints) - set(_FIELD_KEYWORDS))
        if unknown:
            raise TypeError(
                f"Field() got unknown constraint(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(_FIELD_KEYWORDS))}, examples, extra"
            )
        self.schema = {_FIELD_KEYWORDS[k]: v for k, v in constraints.items()}
        if examples is not None:
            self.schema["examples"] = list(examples)
        if extra:
            self.schema.update(extra)

    def __repr__(self):
        return f"Field({self.schema!r})"


def _strip_annotated(tp):
    """`Annotated[T, ...]` -> (T, merged Field schema)."""
    extra = {}
    while typing.get_origin(tp) is typing.Annotated:
        args = typing.get_args(tp)
        for meta in args[1:]:
            if isinstance(meta, Field):
                extra.update(meta.schema)
        tp = args[0]
    return tp, extra


def _is_optional(tp):
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        args = typing.get_args(tp)
        if type(None) in args:
            rest = tuple(a for a in args if a is not type(None))
            return True, (rest[0] if len(rest) == 1 else typing.Union[rest])
    return False, tp


def _doc_of(cls):
    doc = cls.__doc__ or ""
    # A dataclass without a docstring gets `Name(field: type, ...)`.
    if doc.startswith(cls.__name__ + "("):
        return None
    doc = doc.strip()
    return doc or None


def schema_of(tp, components):
    """The JSON Schema of `tp`; named schemas are added to `components`."""
    if isinstance(tp, dict):
        return dict(tp)
    tp, extra = _strip_annotated(tp)
    schema = _schema_of(tp, components)
    if extra:
        if "$ref" in schema:
            schema = {"allOf": [schema], **extra}
        else:
            schema = {**schema, **extra}
    return schema


def _schema_of(tp, components):
    if tp is typing.Any or tp is object:
        return {}
    if tp in _PRIMITIVES:
        return {"type": _PRIMITIVES[tp]}
    optional, inner = _is_optional(tp)
    if optional:
        s = schema_of(inner, components)
        if set(s) == {"type"} and isinstance(s["type"], str):
            return {"type": [s["type"], "null"]}
        return {"anyOf": [s, {"type": "null"}]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Union or origin is types.UnionType:
        return {"anyOf": [schema_of(a, components) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset) or tp in (list, tuple, set):
        s = {"type": "array"}
        if args:
            s["items"] = schema_of(args[0], components)
        if origin in (set, frozenset):
            s["uniqueItems"] = True
        return s
    if origin is dict or tp is dict:
        s = {"type": "object"}
        if len(args) == 2:
            s["additionalProperties"] = schema_of(args[1], components)
        return s
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"enum": [m.value for m in tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        name = tp.__name__
        if name not in components:
            components[name] = None  # placeholder: recursive types refer to it
            hints = typing.get_type_hints(tp, include_extras=True)
            props, required = {}, []
            for f in dataclasses.fields(tp):
                props[f.name] = schema_of(hints.get(f.name, typing.Any), components)
                if f.metadata.get("description"):
                    props[f.name]["description"] = f.metadata["description"]
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                    required.append(f.name)
                elif f.default is not dataclasses.MISSING and _is_json(f.default):
                    props[f.name].setdefault("default", _encode(f.default))
            s = {"type": "object", "properties": props}
            if required:
                s["required"] = required
            s["additionalProperties"] = False
            doc = _doc_of(tp)
            if doc:
                s["description"] = doc
            # Rules across fields (`if`/`then`, `dependentRequired`, ...).
            extra = tp.__dict__.get("json_schema_extra")
            if isinstance(extra, dict):
                s.update(extra)
            components[name] = s
        return {"$ref": f"#/components/schemas/{name}"}
    raise TypeError(
        f"wasmfn cannot describe the type {tp!r}: use str, int, float, bool, list[T], dict[str, T], "
        "Optional[T], Literal, Enum, a dataclass, or a JSON Schema dict"
    )


def _is_json(v):
    return v is None or isinstance(v, (str, int, float, bool, enum.Enum))


def _encode(value):
    """A value made of dataclasses, enums, lists and dicts -> plain JSON data."""
    if isinstance(value, enum.Enum):
        return value.value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_encode(v) for v in value]
    return value


to_json = _encode


class DecodeError(ValueError):
    """A JSON value does not fit the declared type; `loc` says where."""

    def __init__(self, loc, msg):
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


def from_json(tp, value, loc=("body",)):
    """Plain JSON data -> an instance of `tp` (dataclasses built recursively)."""
    if isinstance(tp, dict) or tp is typing.Any or tp is object:
        return value
    tp, _ = _strip_annotated(tp)
    optional, inner = _is_optional(tp)
    if optional:
        return None if value is None else from_json(inner, value, loc)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in _PRIMITIVES:
        ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
        if not ok:
            raise DecodeError(loc, f"expected {_PRIMITIVES[tp]}")
        return value
    if origin in (list, tuple, set, frozenset):
        if not isinstance(value, list):
            raise DecodeError(loc, "expected array")
        items = [from_json(args[0], v, loc + (i,)) if args else v for i, v in enumerate(value)]
        return items if origin is list else origin(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise DecodeError(loc, "expected object")
        return {k: from_json(args[1], v, loc + (k,)) if len(args) == 2 else v for k, v in value.items()}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(value)
        except ValueError:
            raise DecodeError(loc, f"expected one of {[m.value for m in tp]}") from None
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise DecodeError(loc, "expected object")
        hints = typing.get_type_hints(tp, include_extras=True)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = from_json(hints.get(f.name, typing.Any), value[f.name], loc + (f.name,))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise DecodeError(loc + (f.name,), "field required")
        return tp(**kwargs)
    return value


def coerce_text(tp, text, loc):
    """A path or query parameter's text -> the declared type."""
    if isinstance(tp, dict):
        kind = tp.get("type")
        tp = {"integer": int, "number": float, "boolean": bool}.get(kind, str)
    tp, _ = _strip_annotated(tp)
    optional, inner = _is_optional(tp)
    if optional:
        tp = inner
    try:
        if tp is bool:
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
            raise ValueError
        if tp is int:
            return int(text)
        if tp is float:
            return float(text)
        if isinstance(tp, type) and issubclass(tp, enum.Enum):
            return tp(text)
    except ValueError:
        raise DecodeError(loc, f"`{text}` is not a valid {getattr(tp, '__name__', tp)}") from None
    return text
