"""The `convert` example's handlers as a FastAPI app: the baseline a Python
author compares wasmfn with (benches/polyglot serves it with uvicorn).

Same routes, same checks (the unit, the body, absolute zero in the body's
own unit), same answers as functions/convert/app.py.
"""

from enum import Enum

from fastapi import FastAPI
from pydantic import BaseModel, Field, model_validator

ABSOLUTE_ZERO = {"celsius": -273.15, "fahrenheit": -459.67, "kelvin": 0.0}


def to_kelvin(value, unit):
    if unit == "celsius":
        return value + 273.15
    if unit == "fahrenheit":
        return (value + 459.67) * 5 / 9
    return value


def from_kelvin(kelvin, unit):
    if unit == "celsius":
        return kelvin - 273.15
    if unit == "fahrenheit":
        return kelvin * 9 / 5 - 459.67
    return kelvin


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
