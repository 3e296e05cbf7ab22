"""The `convert` example's handlers as a FastAPI app: the baseline a Python
author compares wasmfn with (benches/polyglot serves it with uvicorn).

Same routes, same checks (the unit, the body, absolute zero in the body's
own unit), same answers as functions/convert/app.py, whose `units.py` it
imports.
"""

import os
import sys
from enum import Enum

from fastapi import FastAPI
from pydantic import BaseModel, Field, model_validator

# The example's own unit arithmetic: the same code on both sides.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "functions", "convert"))
from units import ABSOLUTE_ZERO, from_kelvin, to_kelvin  # noqa: E402


class Unit(str, Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"
    KELVIN = "kelvin"


class Temperature(BaseModel):
    """A temperature in one unit."""

    value: float = Field(ge=-459.67, le=1e9, description="Not below absolute zero in `unit`.")
    unit: Unit

    @model_validator(mode="after")
    def above_absolute_zero(self):
        if self.value < ABSOLUTE_ZERO[self.unit.value]:
            raise ValueError(f"below absolute zero in {self.unit.value}")
        return self


class Converted(BaseModel):
    value: float = Field(ge=-459.67)
    unit: Unit


class UnitInfo(BaseModel):
    name: Unit
    absolute_zero: float


app = FastAPI(title="Temperature conversion")


@app.get("/convert/")
def units() -> list[UnitInfo]:
    return [UnitInfo(name=Unit(u), absolute_zero=z) for u, z in ABSOLUTE_ZERO.items()]


@app.post("/convert/{to}")
def convert(to: Unit, t: Temperature) -> Converted:
    kelvin = to_kelvin(t.value, t.unit.value)
    return Converted(value=round(from_kelvin(kelvin, to.value), 2), unit=to)
