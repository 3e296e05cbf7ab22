"""The function's configuration: the `config` values of its manifest
(merged through the policy overlays above it) and the values of the
secrets it lists, read through `wasi:config/store`::

    from wasmfn import App, config

    app = App()

    @app.get("/")
    def greet(req):
        greeting = config.get("greeting", "Hello")   # "config": {"greeting": "Hello"}
        return {"message": f"{greeting}, world!"}

Read values inside handlers, not at import time: `wasmfn build` runs
app.py's import while it builds the component, when there is no store to
read. A changed value loads the function again, so a request never sees a
stale one. In plain CPython (a unit test of a handler), give the values
with `config.use_store({"greeting": "Hi"})`.
"""

from collections.abc import Mapping

__all__ = ["ConfigError", "get", "get_all", "use_store"]


class ConfigError(RuntimeError):
    """The store answered an error (`wasi:config/store`'s `error`), which
    the wasmfn host never does, or there is no store (plain CPython without
    `use_store`). Uncaught in a handler, it answers 500 and its message
    goes to the function's log."""


class _Values:
    """A mapping seen as a store."""

    def __init__(self, values):
        self._values = {str(k): str(v) for k, v in values.items()}

    def get(self, key):
        return self._values.get(key)

    def get_all(self):
        return list(self._values.items())


_given = None
# Set by the component's exports (`wasmfn._wasi`) when the host first calls
# one: before that, the import of app.py runs inside `wasmfn build`, where
# a call to the store would trap without saying why.
_running = False


def use_store(store):
    """Reads from `store` instead of the component's: a mapping of values,
    or an object with `get(key)` and `get_all()` as `wasi:config/store`
    has them; `None` goes back to the component's. For unit tests of
    handlers in plain CPython."""
    global _given
    _given = _Values(store) if isinstance(store, Mapping) else store


def _read(what, call):
    if _given is not None:
        return call(_given)
    try:
        from componentize_py_types import Err

        # `wasi:config/store`: componentize-py names it in full, as the
        # world imports another `store` (`wasi:keyvalue/store`).
        from wit_world.imports import wasi_config_store as store
    except ImportError:
        raise ConfigError(
            f"cannot read {what}: there is no configuration store outside a component built by "
            "`wasmfn build`; in a unit test, give values with `wasmfn.config.use_store({...})`"
        ) from None
    if not _running:
        raise ConfigError(
            f"cannot read {what} while app.py is imported: `wasmfn build` imports it to build the "
            "component, when there is no configuration store; read it inside a handler"
        )
    try:
        return call(store)
    except Err as e:
        kinds = {store.Error_Upstream: "upstream", store.Error_Io: "io"}
        kind = kinds.get(type(e.value), "error")
        raise ConfigError(f"cannot read {what}: wasi:config/store failed: {kind}: {e.value.value}") from None


def get(key, default=None):
    """The value of `key` (a string), or `default` when the function has
    no such key. A listed secret is read the same way (see
    `wasmfn.secret`)."""
    value = _read(f"config `{key}`", lambda store: store.get(key))
    return default if value is None else value


def get_all():
    """Every key and value the function may read, its listed secrets
    included, as a dict."""
    return dict(_read("the config", lambda store: store.get_all()))
