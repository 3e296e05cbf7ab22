"""Unit arithmetic, in a module of its own: a function's folder is on the
Python path, so `import units` works in app.py."""

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
