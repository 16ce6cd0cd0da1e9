"""Parsing of user values (eps, seed lists, key=value settings), shared by the CLI, the sweep
spec and the Python API, so that each value fails with the same one-line message everywhere."""

from __future__ import annotations

from fractions import Fraction

from mi_bench.errors import UserError


def parse_eps(value: str) -> float:
    """``8/255``, ``0.5/255`` or ``0.031`` -> float (eps is in pixel units of [0, 1] images)."""
    try:
        num, _, den = value.strip().partition("/")
        if "/" in den:
            raise ValueError(value)
        eps = float(Fraction(num) / Fraction(den or 1))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"bad eps {value!r}; expected a number or a fraction like 8/255") from None
    if eps < 0:
        raise UserError(f"eps must be non-negative, got {value}")
    return eps


def parse_int_list(value: str, what: str, minimum: int | None = None) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"bad {what} {value!r}; expected comma-separated integers") from None
    if not items:
        raise UserError(f"{what} is empty")
    if minimum is not None and min(items) < minimum:
        raise UserError(f"{what} must be integers >= {minimum}, got {min(items)}")
    return items


def parse_seeds(value: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]: distinct, non-negative (numpy's seed streams need that)."""
    seeds = parse_int_list(value, "--seeds", minimum=0)
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must be distinct, got {value}")
    return seeds


def parse_eps_list(value: str) -> list[tuple[str, float]]:
    """``1/255,8/255`` -> [(label, eps), ...]; every entry is parsed before any work starts."""
    labels = [e.strip() for e in value.split(",")]
    if not any(labels) or not all(labels):
        raise UserError(f"bad --eps {value!r}; expected e.g. 8/255 or 1/255,2/255,4/255")
    return [(label, parse_eps(label)) for label in labels]


def split_key_values(items, what: str, example: str = "width=16") -> dict[str, str]:
    """``("a=1", "b=x")`` -> {"a": "1", "b": "x"}: the one parser of key=value options."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad {what} {item!r}; expected key=value, e.g. {example}")
        out[key.strip()] = value.strip()
    return out


def parse_key_values(items, what: str) -> dict:
    """``("width=16",)`` -> {"width": 16}: ints, floats or strings, for --arch-opt and alike."""
    out = {}
    for key, value in split_key_values(items, what).items():
        for cast in (int, float, str):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
    return out
