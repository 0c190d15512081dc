"""Resource quantities (`resource.Quantity`): parsing, comparison and canonical form.

kube-apiserver never echoes a quantity as written: it parses `0.5` and serves `500m`, parses
`1024Mi` and serves `1Gi` (apimachinery `pkg/api/resource/quantity.go`, `CanonicalizeBytes`).
The same parser decides which strings are rejected at decode time. Exact rational arithmetic
(`fractions.Fraction`) stands in for Go's inf.Dec.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

FORMAT_ERROR = ("quantities must match the regular expression "
                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
NUMERIC_ERROR = "unable to parse numeric part of quantity"
SUFFIX_ERROR = "unable to parse quantity's suffix"

_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL.items()}
_BINARY_BY_EXP = {v: k for k, v in _BINARY.items()}
_NANO = Fraction(1, 10**9)


class QuantityError(ValueError):
    pass


def parse(value: Any) -> tuple[Fraction, str]:
    """(amount, format) where format is `DecimalSI`, `BinarySI` or `DecimalExponent`."""
    if isinstance(value, bool):
        raise QuantityError(FORMAT_ERROR)
    if isinstance(value, int):
        return Fraction(value), "DecimalSI"
    if isinstance(value, float):
        value = repr(value)
    if not isinstance(value, str):
        raise QuantityError(FORMAT_ERROR)
    text = value.strip()
    if not text:
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    mt = _SHAPE.match(text)
    if not mt:
        raise QuantityError(FORMAT_ERROR)
    number, suffix = mt.groups()
    try:
        amount = Fraction(number)
    except (ValueError, ZeroDivisionError):
        raise QuantityError(NUMERIC_ERROR) from None
    if number.count(".") > 1 or number.rstrip("+-") in ("", "."):
        raise QuantityError(NUMERIC_ERROR)
    if suffix in _DECIMAL:
        amount *= Fraction(10) ** _DECIMAL[suffix]
        fmt = "DecimalSI"
    elif suffix in _BINARY:
        amount *= 1024 ** _BINARY[suffix]
        fmt = "BinarySI"
    elif suffix[:1] in ("e", "E") and re.fullmatch(r"[-+]?[0-9]+", suffix[1:]):
        amount *= Fraction(10) ** int(suffix[1:])
        fmt = "DecimalExponent"
    else:
        raise QuantityError(SUFFIX_ERROR)
    # Precision below one nano-unit is rounded away from zero, as ParseQuantity does.
    if (amount / _NANO).denominator != 1:
        scaled = amount / _NANO
        amount = Fraction(math.ceil(scaled) if scaled > 0 else math.floor(scaled)) * _NANO
    return amount, fmt


def value(v: Any) -> Fraction | None:
    """The amount of a quantity, or None when it does not parse."""
    try:
        return parse(v)[0]
    except QuantityError:
        return None


def round_up_milli(amount: Fraction) -> Fraction:
    """`Quantity.RoundUp(-3)`, applied by defaulting to every container resource list."""
    scaled = amount * 1000
    if scaled.denominator == 1:
        return amount
    return Fraction(math.ceil(scaled) if scaled > 0 else math.floor(scaled), 1000)


def canonical(amount: Fraction, fmt: str) -> str:
    """`Quantity.String()` of an amount in a format."""
    if amount == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < amount < 1024 or amount.denominator != 1:
            fmt = "DecimalSI"
        else:
            mant, exp = int(amount), 0
            while mant % 1024 == 0 and exp < 6:
                mant //= 1024
                exp += 1
            return f"{mant}{_BINARY_BY_EXP.get(exp, '')}"
    # Decimal: an integer mantissa with the exponent a multiple of three.
    exp = 0
    while amount.denominator != 1:
        amount *= 10
        exp -= 1
    mant = int(amount)
    while mant != 0 and mant % 10 == 0:
        mant //= 10
        exp += 1
    while exp % 3 != 0:
        mant *= 10
        exp -= 1
    if fmt == "DecimalExponent":
        return f"{mant}e{exp}" if exp else str(mant)
    while exp > 18:
        mant *= 1000
        exp -= 3
    return f"{mant}{_DECIMAL_BY_EXP[exp]}"


def canonicalize(v: Any, round_milli: bool = False) -> Any:
    """The canonical string for a quantity value; unparsable input is returned unchanged."""
    try:
        amount, fmt = parse(v)
    except QuantityError:
        return v
    if round_milli:
        amount = round_up_milli(amount)
    return canonical(amount, fmt)


def to_string(v: Any) -> str:
    """How validation messages print a quantity (`quantity.String()`)."""
    out = canonicalize(v)
    return out if isinstance(out, str) else str(v)
