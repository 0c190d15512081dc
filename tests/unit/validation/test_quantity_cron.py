"""Quantity canonical forms and cron schedule errors, as kube prints them."""

from __future__ import annotations

import pytest

from pocketkube.api.validation import quantity
from pocketkube.api.validation.cron import parse_error


@pytest.mark.parametrize(("given", "served"), [
    ("0.5", "500m"), ("1000m", "1"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("1.5Gi", "1536Mi"),
    ("2000", "2k"), ("129e6", "129e6"), ("128974848", "128974848"), ("123Mi", "123Mi"), (1, "1"),
    (0.25, "250m"), ("100Ki", "100Ki"), ("0", "0"), ("1.5", "1500m"), ("512", "512"),
    ("1.0009765625Ki", "1025"), ("1.5Ki", "1536"),
])
def test_canonical_form(given: object, served: str) -> None:
    assert quantity.canonicalize(given) == served


def test_resource_lists_round_up_to_milli() -> None:
    assert quantity.canonicalize("0.0001", round_milli=True) == "1m"
    assert quantity.canonicalize("0.0001") == "100u"


@pytest.mark.parametrize(("text", "error"), [
    ("1x", quantity.FORMAT_ERROR), ("1K", quantity.SUFFIX_ERROR), ("..5", quantity.NUMERIC_ERROR),
])
def test_parse_errors(text: str, error: str) -> None:
    with pytest.raises(quantity.QuantityError, match="^" + __import__("re").escape(error) + "$"):
        quantity.parse(text)


@pytest.mark.parametrize(("spec", "error"), [
    ("* * * *", "expected exactly 5 fields, found 4: [* * * *]"),
    ("0 24 * * *", "end of range (24) above maximum (23): 24"),
    ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
    ("5-1 * * * *", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", "step of range should be a positive number: */0"),
    ("x * * * *", 'failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax'),
    ("@sometimes", "unrecognized descriptor: @sometimes"),
    ("", "empty spec string"),
])
def test_cron_errors(spec: str, error: str) -> None:
    assert parse_error(spec) == error


@pytest.mark.parametrize("spec", ["*/15 * * * *", "0 0 1 jan *", "30 6 * * SUN", "@weekly", "1,2,3 * * * *"])
def test_cron_accepts(spec: str) -> None:
    assert parse_error(spec) is None
