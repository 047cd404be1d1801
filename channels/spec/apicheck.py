"""A job checked against the API model, generically: every shape, every constraint the model states.

:func:`check_shape` walks a parsed JSON value beside a model shape
(:mod:`channels.spec.model`) and reports, with the API's field paths, what
SageMaker's API would refuse: a wrong JSON type, a missing required member, a
member the shape does not have, a length, count or value out of range, a
string outside its enum or not matching its pattern (whole). Integers are held
to the range of their model type (32 bits for ``integer``, 64 for ``long``)
where the shape sets none. Nothing here is specific to training jobs.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass

from channels.spec.model import ApiModel, Shape
from channels.spec.problems import a_type, member_path, quote_hint, show

MAX_FINDINGS = 1000
"""Findings kept per check; the rest are counted, so that a million bad keys cost no more than a thousand."""
ENUM_SHOWN = 8
KEYS_SHOWN = 12
PATTERN_SHOWN = 100
URI_SCHEMES = ("s3://", "https://")  # what the model's S3Uri pattern admits

_KINDS = {"structure": "an object", "map": "an object", "list": "an array", "string": "a string",
          "integer": "an integer", "long": "an integer", "boolean": "a boolean (true or false)",
          "double": "a number", "float": "a number", "timestamp": "a timestamp", "blob": "a string"}
_PYTHON_TYPES = {"structure": Mapping, "map": Mapping, "list": list, "string": str, "blob": str,
                 "integer": int, "long": int, "boolean": bool, "double": (int, float), "float": (int, float),
                 "timestamp": (str, int, float)}


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason SageMaker would refuse a job.

    Attributes:
        path: the field path in the API's JSON (``InputDataConfig[2].ChannelName``).
        check: what failed: type, required, unknown, length, count, range, enum, pattern,
            url (an S3Uri of another scheme) or, for rule "seed", the rule's name.
        message: the value, the limit and the fix, in one line.
        rule: "model" (the API model states it) or "seed" (our rule, backed by the API's
            documentation; see :mod:`channels.spec.seed_rules`).
        shape: the model shape the check applied (the parent's for required and unknown).
    """

    path: str
    check: str
    message: str
    rule: str = "model"
    shape: str = ""


class Findings:
    """Findings in the order found, at most MAX_FINDINGS kept; ``more`` counts the rest."""

    def __init__(self) -> None:
        self.items: list[Finding] = []
        self.more = 0

    def add(self, finding: Finding) -> None:
        if len(self.items) < MAX_FINDINGS:
            self.items.append(finding)
        else:
            self.more += 1


def check_shape(model: ApiModel, value: object, shape_name: str, out: Findings, path: str = "") -> None:
    """Check ``value`` against the model's shape ``shape_name``; findings go to ``out``."""
    shape = model[shape_name]
    expected = _PYTHON_TYPES.get(shape.type, object)
    if not isinstance(value, expected) or (isinstance(value, bool) and shape.type != "boolean"):
        _wrong_type(out, path, value, shape)
        return
    if shape.type == "structure":
        _structure(model, value, shape, out, path)  # type: ignore[arg-type]
    elif shape.type == "list":
        _count(out, path, len(value), shape, "item")  # type: ignore[arg-type]
        for i, item in enumerate(value):  # type: ignore[arg-type]
            check_shape(model, item, shape.member, out, f"{path}[{i}]")  # type: ignore[arg-type]
    elif shape.type == "map":
        _count(out, path, len(value), shape, "entry")  # type: ignore[arg-type]
        for key, item in value.items():  # type: ignore[union-attr]
            where = f"{path}[{show(key)}]"
            check_shape(model, key, shape.key, out, where)  # type: ignore[arg-type]
            check_shape(model, item, shape.value, out, where)  # type: ignore[arg-type]
    elif shape.type in ("string", "blob"):
        _string(out, path, value, shape)  # type: ignore[arg-type]
    elif shape.type in ("integer", "long", "double", "float"):
        _number(out, path, value, shape)  # type: ignore[arg-type]


def _structure(model: ApiModel, value: Mapping, shape: Shape, out: Findings, path: str) -> None:
    for name in shape.required:
        if name not in value:
            out.add(Finding(member_path(path, name), "required",
                            f"missing; the API model requires it in {shape.name}: add it", shape=shape.name))
    for key, item in value.items():
        where = member_path(path, key)
        member = shape.members.get(key) if isinstance(key, str) else None
        if member is None:
            out.add(Finding(where, "unknown", f"unknown key: {shape.name} has no member {show(key)}; "
                                              f"{_suggest(key, tuple(shape.members))}", shape=shape.name))
        else:
            check_shape(model, item, member, out, where)


def _wrong_type(out: Findings, path: str, value: object, shape: Shape) -> None:
    kind = _KINDS.get(shape.type, shape.type)
    fix = f"use {kind}"
    if shape.type in ("integer", "long") and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        fix = f"write it without quotes: {value.strip()}"
    elif shape.type == "string" and isinstance(value, (int, float, bool)):
        fix = quote_hint(value)
    out.add(Finding(path, "type", f"{show(value)} is {a_type(value)}, not {kind} ({shape.name} in the API model): "
                                  f"{fix}", shape=shape.name))


def _count(out: Findings, path: str, n: int, shape: Shape, noun: str) -> None:
    low, high = shape.min or 0, shape.max
    if n < low or (high is not None and n > high):
        limit = f"at least {low}" if high is None else f"{low} to {high}"
        fix = "add some" if n < low else "remove some"
        nouns = noun if n == 1 else {"item": "items", "entry": "entries"}[noun]
        out.add(Finding(path, "count", f"{n:,} {nouns}; {shape.name} takes {limit}: {fix}", shape=shape.name))


def _string(out: Findings, path: str, value: str, shape: Shape) -> None:
    low, high = shape.min or 0, shape.max
    if len(value) < low or (high is not None and len(value) > high):
        limit = f"at least {low}" if high is None else (f"at most {high}" if low == 0 else f"{low} to {high}")
        fix = "give a value" if len(value) < low else "shorten it"
        out.add(Finding(path, "length", f"{show(value)} is {len(value):,} chars long; {shape.name} takes {limit} "
                                        f"chars: {fix}", shape=shape.name))
        return
    if shape.enum:
        if value not in shape.enum:
            out.add(Finding(path, "enum", f"{show(value)} is not one of {_enum_text(shape.enum)}; "
                                          f"{_suggest(value, shape.enum, 'use one of those')}", shape=shape.name))
        return
    regex = shape.regex()
    if regex is None or regex.fullmatch(value):
        return
    if shape.name == "S3Uri" and not value.startswith(URI_SCHEMES):
        other = "://" in value  # an fsspec URL that channels run reads, or no scheme at all
        out.add(Finding(path, "url" if other else "pattern",
                        f"{show(value)} is not an s3:// or https:// URI; SageMaker reads only those "
                        + ("(channels run reads other fsspec URLs: see --local)" if other else
                           "(add the scheme: s3://bucket/prefix)"), shape=shape.name))
        return
    breaks = any(c in value for c in "\n\r\x85\u2028\u2029") and regex.fullmatch(value.replace("\n", " ")
                                                                                   .replace("\r", " "))
    pattern = shape.pattern if len(shape.pattern or "") <= PATTERN_SHOWN else shape.pattern[:PATTERN_SHOWN] + "…"
    hint = "line breaks are not allowed here: remove them" if breaks else "fix the value"
    out.add(Finding(path, "pattern", f"{show(value)} does not match {shape.name}'s pattern {pattern}; {hint}",
                    shape=shape.name))


def _number(out: Findings, path: str, value: float, shape: Shape) -> None:
    if shape.type in ("integer", "long") and not isinstance(value, int):
        _wrong_type(out, path, value, shape)
        return
    low, high = shape.bounds()
    if (low is not None and value < low) or (high is not None and value > high):
        kind = "an integer" if shape.type in ("integer", "long") else "a number"
        limit = f">= {low}" if high is None else (f"<= {high}" if low is None else f"from {low} to {high}")
        out.add(Finding(path, "range", f"{show(value)} is out of range; {shape.name} takes {kind} {limit}",
                        shape=shape.name))


def _enum_text(values: tuple[str, ...]) -> str:
    if len(values) <= ENUM_SHOWN:
        return " | ".join(values)
    return " | ".join(values[:ENUM_SHOWN]) + f" | … ({len(values)} values)"


def _suggest(value: object, choices: tuple[str, ...], otherwise: str = "") -> str:
    """A "did you mean" for a near miss (case first), else the choices, cut to a few."""
    if isinstance(value, str):
        same = [c for c in choices if c.lower() == value.lower()]
        close = same or difflib.get_close_matches(value[:200], choices, n=1, cutoff=0.6)
        if close:
            return f'did you mean "{close[0]}"? (case matters)'
    if otherwise:
        return otherwise
    shown = ", ".join(choices[:KEYS_SHOWN]) + (f", … ({len(choices)} in all)" if len(choices) > KEYS_SHOWN else "")
    return f"its members: {shown}"
