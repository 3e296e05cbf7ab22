"""The function's secrets: values the operator sets (through the admin
API, `--secrets-dir` or `WASMFN_SECRET_<NAME>`), never its manifest, read
through the same `wasi:config/store` as `wasmfn.config`::

    from wasmfn import secret

    @app.get("/")
    def call_upstream(req):
        api_key = secret.get("api_key")    # "secrets": ["api_key"]
        ...

A function reads only the secrets its manifest lists in `secrets`; any
other name is absent (`None`), even when the operator has set it. A
listed secret that no provider has stops the function from loading, so a
listed one is always there. Do not log it or answer with it: what the
function prints is its own.
"""

from . import config as _config

__all__ = ["get"]


def get(name, default=None):
    """The value of secret `name` (1–64 of `a-z 0-9 _`), or `default`
    when the manifest's `secrets` does not list it."""
    value = _config._read(f"secret `{name}`", lambda store: store.get(name))
    return default if value is None else value
