"""`{{name}}`: served at `/{{name}}` (its folder), described in `/_fn/openapi.json`."""

from dataclasses import dataclass
from typing import Annotated, Optional

from wasmfn import App, Field, config

app = App(title="{{name}}")


@dataclass
class Greeting:
    """The answer."""

    message: str


@app.get("/", query={"name": Optional[Annotated[str, Field(min_length=1, max_length=40)]]})
def greet(req) -> Greeting:
    """Greets someone."""
    # `config` in fn.config.json. A secret listed in its `secrets` reads the
    # same way: `secret.get("api_key")` (`from wasmfn import secret`).
    greeting = config.get("greeting", "Hello")
    name = req.query.get("name") or "world"
    return Greeting(message=f"{greeting}, {name}!")
