"""Key-value stores: state that outlives the request, kept by the host in
the stores the manifest lists in `key_value_stores`, through
`wasi:keyvalue` (`store`, `atomics`, `batch`)::

    from wasmfn import App, kv

    app = App()

    @app.get("/visits")
    def visits(req):
        store = kv.Store.open("default")   # "key_value_stores": ["default"]
        return {"count": store.increment("visits")}

Values are bytes (a `str` given is written as UTF-8); `get_json` and
`set_json` keep any JSON value. The stores are the function's tenant's:
every function of the tenant that lists `default` shares it. A write past
one of the tenant's quotas, or a backend that is down, raises `KvError`
with the host's reason; uncaught in a handler, it answers 500 and its
message goes to the function's log.

Open stores inside handlers, not at import time: `wasmfn build` runs
app.py's import while it builds the component, when there are no stores.
In plain CPython (a unit test of a handler), keep them in memory with
`kv.use_stores({"default": {}})`.
"""

import json
import re
from collections.abc import Mapping

from . import config as _config

# Imported with the module, not when a store is first opened:
# componentize-py keeps in the component the modules imported while it
# builds it, and no other. Absent in plain CPython.
try:
    from componentize_py_types import Err as _Err
    from wit_world.imports import atomics as _atomics
    from wit_world.imports import batch as _batch
    from wit_world.imports import wasi_keyvalue_store as _wasi_store
except ImportError:
    _wasi_store = None

__all__ = ["KvError", "Store", "use_stores"]

_I64_MAX = 2**63 - 1


class KvError(RuntimeError):
    """A key-value operation failed. `store` is the store's name; `kind`
    is `"access-denied"` (the manifest does not list the store in
    `key_value_stores`), `"no-such-store"`, `"other"` (the host's reason:
    a tenant quota, a value that is not a counter, a backend that is down)
    or `"json"` (`get_json` of a value that is not JSON)."""

    def __init__(self, store, kind, message):
        super().__init__(message)
        self.store = store
        self.kind = kind


class _Refused(Exception):
    """What a backend answers for `wasi:keyvalue`'s `error`."""

    def __init__(self, kind, message=None):
        super().__init__(kind)
        self.kind = kind
        self.message = message


def _said(store, refused):
    if refused.kind == "access-denied":
        return f"key-value store `{store}`: access denied; list it in `key_value_stores` of fn.config.json"
    if refused.kind == "no-such-store":
        return f"key-value store `{store}`: no such store"
    return f"key-value store `{store}`: {refused.message}"


class _Component:
    """The component's stores: the modules componentize-py generates."""

    def __init__(self, err, store, atomics, batch):
        self._err, self._store, self._atomics, self._batch = err, store, atomics, batch

    def _call(self, f, *args):
        try:
            return f(*args)
        except self._err as e:
            value, s = e.value, self._store
            if isinstance(value, s.Error_AccessDenied):
                raise _Refused("access-denied") from None
            if isinstance(value, s.Error_NoSuchStore):
                raise _Refused("no-such-store") from None
            raise _Refused("other", getattr(value, "value", repr(value))) from None

    def open(self, name):
        return self._call(self._store.open, name)

    def get(self, b, key):
        return self._call(b.get, key)

    def set(self, b, key, value):
        self._call(b.set, key, value)

    def delete(self, b, key):
        self._call(b.delete, key)

    def exists(self, b, key):
        return self._call(b.exists, key)

    def list_keys(self, b, cursor):
        page = self._call(b.list_keys, cursor)
        return page.keys, page.cursor

    def increment(self, b, key, delta):
        return self._call(self._atomics.increment, b, key, delta)

    def get_many(self, b, keys):
        return [None if p is None else p[1] for p in self._call(self._batch.get_many, b, keys)]

    def set_many(self, b, pairs):
        self._call(self._batch.set_many, b, pairs)

    def delete_many(self, b, keys):
        self._call(self._batch.delete_many, b, keys)


class _Memory:
    """Stores kept in dicts (`use_stores`), with the host's semantics."""

    _PAGE = 1000

    def __init__(self, stores):
        self._stores = stores

    def open(self, name):
        if name not in self._stores:
            raise _Refused("access-denied")
        return self._stores[name]

    def get(self, b, key):
        return b.get(key)

    def set(self, b, key, value):
        b[key] = value

    def delete(self, b, key):
        b.pop(key, None)

    def exists(self, b, key):
        return key in b

    def list_keys(self, b, cursor):
        keys = sorted(b)
        start = cursor or 0
        end = start + self._PAGE
        return keys[start:end], (end if end < len(keys) else None)

    def increment(self, b, key, delta):
        if delta > _I64_MAX:
            raise _Refused("other", f"the delta {delta} is more than {_I64_MAX}")
        old = b.get(key, b"0")
        text = old.decode("utf-8", "replace")
        if not re.fullmatch(r"0|[1-9][0-9]{0,18}", text) or int(text) > _I64_MAX:
            raise _Refused("other", f"`{key}` is not a counter (a decimal number from 0 to {_I64_MAX})")
        new = int(text) + delta
        if new > _I64_MAX:
            raise _Refused("other", f"incrementing `{key}` by {delta} would pass {_I64_MAX}")
        b[key] = str(new).encode()
        return new

    def get_many(self, b, keys):
        return [b.get(k) for k in keys]

    def set_many(self, b, pairs):
        b.update(pairs)

    def delete_many(self, b, keys):
        for k in keys:
            b.pop(k, None)


_given = None


def use_stores(stores):
    """Keeps the stores in memory instead of the component's: `stores`
    maps each store the function may open to a dict of its keys and
    values (bytes), which the operations change in place; `None` goes back
    to the component's. For unit tests of handlers in plain CPython."""
    global _given
    if stores is None:
        _given = None
    elif isinstance(stores, Mapping):
        _given = _Memory(stores)
    else:
        raise TypeError("use_stores takes a mapping of store names to dicts, or None")


def _backend(name):
    if _given is not None:
        return _given
    what = f"cannot open key-value store `{name}`"
    if _wasi_store is None:
        raise KvError(
            name,
            "other",
            f"{what}: there are no key-value stores outside a component built by `wasmfn build`; "
            "in a unit test, keep them in memory with `wasmfn.kv.use_stores({...})`",
        )
    if not _config._running:
        raise KvError(
            name,
            "other",
            f"{what} while app.py is imported: `wasmfn build` imports it to build the component, "
            "when there are no stores; open it inside a handler",
        )
    return _Component(_Err, _wasi_store, _atomics, _batch)


def _bytes(value):
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"a value is bytes or str, not {type(value).__name__}")


class Store:
    """One open store (`wasi:keyvalue`'s `bucket`); `Store.open(name)`."""

    def __init__(self, name, backend, bucket):
        self.name = name
        self._backend = backend
        self._bucket = bucket

    @classmethod
    def open(cls, name):
        """Opens store `name` (1–64 of `a-z 0-9 _ -`); the manifest must
        list it in `key_value_stores`, or this raises `KvError` with
        `kind` `"access-denied"`."""
        backend = _backend(name)
        try:
            return cls(name, backend, backend.open(name))
        except _Refused as e:
            raise KvError(name, e.kind, _said(name, e)) from None

    def _do(self, op, *args):
        try:
            return getattr(self._backend, op)(self._bucket, *args)
        except _Refused as e:
            raise KvError(self.name, e.kind, _said(self.name, e)) from None

    def __repr__(self):
        return f"Store({self.name!r})"

    def get(self, key, default=None):
        """The value of `key` (bytes), or `default` when it is not set. An
        empty value is a value (`b""`)."""
        value = self._do("get", key)
        return default if value is None else value

    def set(self, key, value):
        """Sets `key` to `value` (bytes, or a str written as UTF-8)."""
        self._do("set", key, _bytes(value))

    def delete(self, key):
        """Removes `key`; nothing happens when it is not set."""
        self._do("delete", key)

    def exists(self, key):
        """Whether `key` is set."""
        return self._do("exists", key)

    def keys(self):
        """Every key of the store, in no particular order, read a page at
        a time as the iteration goes."""
        cursor = None
        while True:
            keys, cursor = self._do("list_keys", cursor)
            yield from keys
            if cursor is None:
                return

    def increment(self, key, delta=1):
        """Adds `delta` (0 or more) to the counter at `key` (created with
        `delta` when not set) and answers the new value, in one
        indivisible step. The counter is kept as decimal text (`b"42"`);
        a value that is not one, or a sum past 2**63 - 1, raises
        `KvError`."""
        if isinstance(delta, bool) or not isinstance(delta, int) or delta < 0:
            raise ValueError(f"increment by a whole number, 0 or more, not {delta!r}")
        return self._do("increment", key, delta)

    def get_many(self, keys):
        """The values of `keys`, in their order (`None` for a key that is
        not set), in one call to the host."""
        return self._do("get_many", list(keys))

    def set_many(self, pairs):
        """Sets every pair of `pairs` (a mapping, or `(key, value)`
        pairs) in one call to the host; under a quota all or nothing."""
        items = pairs.items() if isinstance(pairs, Mapping) else pairs
        self._do("set_many", [(k, _bytes(v)) for k, v in items])

    def delete_many(self, keys):
        """Removes every key of `keys` that is set, in one call to the host."""
        self._do("delete_many", list(keys))

    def get_json(self, key, default=None):
        """The value of `key` parsed as JSON, or `default` when it is not
        set."""
        value = self.get(key)
        if value is None:
            return default
        try:
            return json.loads(value)
        except ValueError as e:
            raise KvError(
                self.name, "json", f"key-value store `{self.name}`: the value of `{key}` is not JSON: {e}"
            ) from None

    def set_json(self, key, value):
        """Sets `key` to `value` written as JSON."""
        self.set(key, json.dumps(value, separators=(",", ":"), ensure_ascii=False))
