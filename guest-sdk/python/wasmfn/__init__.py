"""Write wasmfn functions in Python.

One declaration per operation gives the host its route, the request
validation (422 before your code runs) and the entry in the unified OpenAPI
document::

    from dataclasses import dataclass
    from typing import Annotated
    from wasmfn import App, Field

    app = App(title="Greeter")

    @dataclass
    class Greeting:
        message: str

    @app.get("/{name}", params={"name": Annotated[str, Field(min_length=1, max_length=40)]})
    def greet(req) -> Greeting:
        \"\"\"Greets someone by name.\"\"\"
        return Greeting(message=f"Hello, {req.params['name']}!")

`wasmfn build` turns the folder's `app.py` into a component: it looks for
the module-level `app` and exports it as the function's HTTP handler and
`describe`.

Handlers read the manifest's `config` values with `config.get(key,
default)` and the secrets it lists in `secrets` with `secret.get(name)`
(`from wasmfn import config, secret`), and keep state in the key-value
stores it lists in `key_value_stores` with `kv.Store.open(name)`.
"""

from . import config, kv, secret
from ._app import App, Operation
from ._http import HTTPError, Request, Response
from ._schema import Field, schema_of

__all__ = ["App", "Field", "HTTPError", "Operation", "Request", "Response", "config", "kv", "schema_of", "secret"]
__version__ = "0.1.0"
