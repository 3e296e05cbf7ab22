"""`convert`: temperatures between units, in Python.

Served at `/convert` (its folder). `POST /convert/{to}` takes a temperature
as JSON and answers it in unit `to`; the host checks the unit, the body and
absolute zero (in the body's own unit) before this code runs.
"""

from dataclasses import dataclass
from enum import Enum
from typing import Annotated

from wasmfn import App, Field

from units import ABSOLUTE_ZERO, from_kelvin, to_kelvin

app = App(title="Temperature conversion", description="Converts temperatures between Celsius, Fahrenheit and kelvin.")


class Unit(Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"
    KELVIN = "kelvin"


@dataclass
class Temperature:
    """A temperature in one unit."""

    value: Annotated[float, Field(ge=-459.67, le=1e9, description="Not below absolute zero in `unit`.")]
    unit: Unit

    # Absolute zero depends on the unit: a rule across the two fields.
    json_schema_extra = {
        "allOf": [
            {"if": {"properties": {"unit": {"const": u}}}, "then": {"properties": {"value": {"minimum": z}}}}
            for u, z in ABSOLUTE_ZERO.items()
        ]
    }


@dataclass
class Converted:
    """A temperature in the unit asked for, unbounded above (10⁹ °C is 1.8·10⁹ °F)."""

    value: Annotated[float, Field(ge=-459.67, description="Not below absolute zero in `unit`.")]
    unit: Unit


@dataclass
class UnitInfo:
    name: Unit
    absolute_zero: float


@app.get("/", tags=["convert"])
def units(req) -> list[UnitInfo]:
    """Lists the units and their absolute zero."""
    return [UnitInfo(name=Unit(u), absolute_zero=z) for u, z in ABSOLUTE_ZERO.items()]


@app.post("/{to}", params={"to": Unit}, body=Temperature, tags=["convert"])
def convert(req) -> Converted:
    """Converts a temperature to the unit `to`."""
    t = req.data
    kelvin = to_kelvin(t.value, t.unit.value)
    to = req.params["to"]
    return Converted(value=round(from_kelvin(kelvin, to.value), 2), unit=to)
