"""`convert`: temperatures between units, in Python.

Served at `/convert` (its folder). `POST /convert/{to}` takes a temperature
as JSON and answers it in unit `to`; the host checks the unit, the body and
the physical lower bound before this code runs.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from wasmfn import App, Field, HTTPError

from units import ABSOLUTE_ZERO, from_kelvin, to_kelvin

app = App(title="Temperature conversion", description="Converts temperatures between Celsius, Fahrenheit and kelvin.")


class Unit(Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"
    KELVIN = "kelvin"


@dataclass
class Temperature:
    """A temperature in one unit."""

    value: Annotated[float, Field(ge=-459.67, le=1e9, description="No unit goes below -459.67 (0 K in Fahrenheit).")]
    unit: Unit


@dataclass
class UnitInfo:
    name: Unit
    absolute_zero: float


@app.get("/", tags=["convert"])
def units(req) -> list[UnitInfo]:
    """Lists the units and their absolute zero."""
    return [UnitInfo(name=Unit(u), absolute_zero=z) for u, z in ABSOLUTE_ZERO.items()]


@app.post("/{to}", params={"to": Unit}, body=Temperature, tags=["convert"],
          responses={400: "The temperature is below absolute zero in its unit."})
def convert(req) -> Temperature:
    """Converts a temperature to the unit `to`."""
    t = req.data
    if t.value < ABSOLUTE_ZERO[t.unit.value]:
        raise HTTPError(400, f"{t.value} is below absolute zero in {t.unit.value}", code="below_absolute_zero")
    kelvin = to_kelvin(t.value, t.unit.value)
    to = req.params["to"]
    return Temperature(value=round(from_kelvin(kelvin, to.value), 2), unit=to)
