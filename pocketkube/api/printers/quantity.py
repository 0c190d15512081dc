"""Canonical text of a resource quantity, as `resource.Quantity.String()` prints it.

Table cells such as a PersistentVolume's CAPACITY or a ResourceQuota's `used/hard` go through
Go's Quantity parser and canonical formatter, so "1024Mi" prints as "1Gi" and "0.5" as "500m".
Written by hand because the exact canonical rules (suffix kept by format family, exponents in
multiples of three, rounding up to nano units, small binary values shown as decimal) are
apimachinery's, and no Python package follows them.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

_RE = re.compile(r"^([+-]?)(\d*)(?:\.(\d*))?([a-zA-Z]*|[eE][+-]?\d+)$")
_DEC = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BIN = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DEC_SUFFIX = {v: k for k, v in _DEC.items()}
_BIN_SUFFIX = {v // 10: k for k, v in _BIN.items()}
_NANO = Fraction(1, 10**9)


def _parse(text: str) -> tuple[Fraction, str] | None:
    """(value, format) with format one of "DecimalSI", "BinarySI", "DecimalExponent"."""
    m = _RE.match(text.strip())
    if not m:
        return None
    sign, whole, frac, suffix = m.groups()
    digits = (whole or "0") + (frac or "")
    value = Fraction(int(digits), 10 ** len(frac or ""))
    if suffix in _DEC:
        value *= Fraction(10) ** _DEC[suffix]
        fmt = "DecimalSI"
    elif suffix in _BIN:
        value *= 2 ** _BIN[suffix]
        fmt = "BinarySI"
    elif suffix[:1] in ("e", "E") and len(suffix) > 1:
        value *= Fraction(10) ** int(suffix[1:])
        fmt = "DecimalExponent"
    else:
        return None
    if value and value.denominator != 1:
        # Non-zero values round up (away from zero) to the nearest nano unit.
        value = Fraction(math.ceil(value / _NANO)) * _NANO
    if fmt == "BinarySI" and 0 < value < 1:
        fmt = "DecimalSI"
    return (-value if sign == "-" else value), fmt


def _decimal(value: Fraction, fmt: str) -> str:
    # value is a multiple of 1e-9: write it as mantissa * 10**exp, exp a multiple of 3.
    exp = -9
    mantissa = int(value / _NANO)
    while mantissa and mantissa % 10 == 0:
        mantissa //= 10
        exp += 1
    shift = exp % 3
    mantissa *= 10**shift
    exp -= shift
    if fmt == "DecimalSI" and exp in _DEC_SUFFIX:
        return f"{mantissa}{_DEC_SUFFIX[exp]}"
    return f"{mantissa}" if exp == 0 else f"{mantissa}e{exp}"


@lru_cache(maxsize=4096)
def canonical(text: str) -> str:
    """The canonical form of a quantity string; unparsable text is returned unchanged."""
    if text == "0":
        return "0"
    parsed = _parse(text)
    if parsed is None:
        return text
    value, fmt = parsed
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < value < 1024 or value.denominator != 1:
            return _decimal(value, "DecimalSI")
        n, exp = int(value), 0
        while n % 1024 == 0 and exp < 6:
            n //= 1024
            exp += 1
        return f"{n}{_BIN_SUFFIX.get(exp, '')}"
    return _decimal(value, fmt)


def qstr(value: Any) -> str:
    """`Quantity.String()` of a JSON field: "0" for an absent (zero) quantity."""
    if value is None:
        return "0"
    if isinstance(value, int | float):
        value = repr(value) if isinstance(value, float) else str(value)
    return canonical(value)


def qstr_ptr(value: Any) -> str:
    """`(*Quantity).String()` of an optional field: "<nil>" when absent."""
    return "<nil>" if value is None else qstr(value)
