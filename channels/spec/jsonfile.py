"""Reading a job file: strict JSON, bounded in size, depth and numbers, with errors that say where.

``json.loads`` alone lets 100,000 nested arrays end in a RecursionError, a
5,000-digit integer in a ValueError that names no position, a duplicate key
pass (the last one wins) and ``NaN`` pass. :func:`read_job_file` turns each
into one line, a :class:`~channels.errors.SpecError` with no ``problems``,
naming the file and where: line and column for syntax, the JSON path (written
as field paths are, ``InputDataConfig[0].DataSource``) for the rest.
Whatever the file's size, the message stays under a few hundred characters.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Iterator
from os import PathLike
from pathlib import Path

from channels.errors import SourceNotFoundError, SpecError
from channels.spec.problems import a_type, member_path, show

MAX_FILE_BYTES = 64 * 2**20
"""A valid job is well under 1 MiB (100 hyperparameters of 2,500 chars are 250 KB); 64 MiB bounds memory."""
MAX_DEPTH = 64
"""Deepest nesting read; the API model's deepest shape is 6 levels below the top."""
MAX_INT_DIGITS = 100
"""Longer integers are refused as malformed; no API number has more than 19 digits (a Long)."""
PATH_MAX_CHARS = 200

_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
         (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},:]', re.DOTALL)


class _Bad:
    """A value json.loads was handed that no job can hold; the tree walk reports it with its path."""

    __slots__ = ("fix", "what")

    def __init__(self, what: str, fix: str) -> None:
        self.what, self.fix = what, fix


class _Duplicated(dict):
    """An object that named one key twice (json.loads keeps the last value)."""

    duplicate: str = ""


def read_job_file(path: str | PathLike) -> dict:
    """The JSON object in a job file.

    Raises:
        SourceNotFoundError: no such file.
        SpecError: unreadable, too large, not UTF-8, malformed JSON, nesting
            deeper than MAX_DEPTH, a huge integer, NaN, a duplicate key, a lone
            surrogate, or a top level that is not an object; ``problems`` is empty
            and ``details`` has ``path`` and, where known, ``line`` and ``column``
            or ``json_path``.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError as exc:
        raise SourceNotFoundError(f"{path}: no such job file", path=str(path)) from exc
    except OSError as exc:
        raise _error(path, f"cannot read the job file: {exc.strerror or exc}") from exc
    if len(data) > MAX_FILE_BYTES:
        raise _error(path, f"is larger than {MAX_FILE_BYTES:,} bytes; a job definition is far smaller "
                           "(look for a value pasted by mistake)")
    return loads_job(_decode(path, data), path)


def loads_job(text: str, path: str | PathLike = "<job>") -> dict:
    """The JSON object in ``text``, read as :func:`read_job_file` reads a file."""
    if not text.strip():
        raise _error(path, "is empty; a job definition is a JSON object {...}")
    nul = text.find("\x00")
    if nul >= 0:
        raise _error(path, f"holds a NUL character at offset {nul} (is it UTF-16?); save it as UTF-8 JSON")
    try:
        value = json.loads(text, object_pairs_hook=_object, parse_int=_int, parse_float=_float,
                           parse_constant=_constant)
    except json.JSONDecodeError as exc:
        raise _error(path, f"malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}",
                     line=exc.lineno, column=exc.colno) from exc
    except RecursionError as exc:
        where = _locate_deep(text)
        if where is None:  # cannot happen for text json.loads recursed on; say so plainly
            raise _error(path, f"is nested too deeply (more than {MAX_DEPTH} levels)") from exc
        pos, parts = where
        line, column = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
        raise _error(path, f"is nested deeper than {MAX_DEPTH} levels at {_path(parts)} (line {line}, column "
                           f"{column}); no job needs that: look for a value pasted by mistake",
                     line=line, column=column, json_path=_path(parts)) from exc
    _check_tree(path, value)
    if not isinstance(value, dict):
        shown = "" if value is None else f" ({show(value)})"
        raise _error(path, f"holds {a_type(value)}{shown} at the top level; a job definition is a JSON object {{...}}")
    return value


def _decode(path: str | PathLike, data: bytes) -> str:
    if data.startswith(codecs.BOM_UTF8):
        raise _error(path, "starts with a UTF-8 byte-order mark (EF BB BF); save it as UTF-8 without one")
    for bom, name in _BOMS:
        if data.startswith(bom):
            raise _error(path, f"is {name} text (byte-order mark {bom.hex(' ').upper()}); save it as UTF-8 JSON")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise _error(path, f"is not UTF-8 text: byte 0x{data[exc.start]:02x} at offset {exc.start} (line {line}); "
                           "save the job file as UTF-8 JSON", line=line) from exc


def _object(pairs: list[tuple[str, object]]) -> dict:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    seen: set[str] = set()
    out = _Duplicated(obj)
    out.duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
    return out


def _int(text: str) -> int | _Bad:
    digits = len(text.lstrip("-"))
    if digits <= MAX_INT_DIGITS:
        return int(text)
    return _Bad(f"an integer of {digits:,} digits", "no field of a job takes more than 19 digits")


def _float(text: str) -> float | _Bad:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Bad(f"a number too large for a double ({text[:20]}{'…' if len(text) > 20 else ''})",
                    "write a smaller number")
    return value


def _constant(name: str) -> _Bad:
    return _Bad(name, "JSON has no NaN or Infinity: write a number (hyperparameters: a string, as \"nan\")")


def _check_tree(path: str | PathLike, value: object) -> None:
    """Report the first duplicate key, huge number, NaN, lone surrogate or too deep a nesting, with its path.

    Only containers and odd values are stacked, so a 50 MB array of numbers costs no memory beyond itself.
    """
    stack: list[tuple[object, tuple]] = [(value, ())]
    while stack:
        item, parts = stack.pop()
        if len(parts) > MAX_DEPTH:
            raise _error(path, f"is nested deeper than {MAX_DEPTH} levels at {_path(parts)}; no job needs that: "
                               "look for a value pasted by mistake", json_path=_path(parts))
        if isinstance(item, _Bad):
            raise _error(path, f"holds {item.what} at {_path(parts)}; {item.fix}", json_path=_path(parts))
        if isinstance(item, str):
            _check_text(path, item, parts)
        elif isinstance(item, dict):
            if isinstance(item, _Duplicated):
                raise _error(path, f"names the key {show(item.duplicate)} twice at {_path(parts)}; JSON readers "
                                   "differ on which value wins: keep one", json_path=_path(parts))
            for key, child in item.items():
                _check_text(path, key, parts)
                if isinstance(child, (dict, list, _Bad, str)):
                    stack.append((child, (*parts, key)))
        elif isinstance(item, list):
            for i in range(len(item) - 1, -1, -1):
                if isinstance(item[i], (dict, list, _Bad)) or (isinstance(item[i], str) and not item[i].isascii()):
                    stack.append((item[i], (*parts, i)))


def _check_text(path: str | PathLike, text: str, parts: tuple) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise _error(path, f"holds a lone surrogate (\\u{ord(text[exc.start]):04x}) in a key or string at "
                           f"{_path(parts)}; JSON text must be valid Unicode: fix the escape",
                     json_path=_path(parts)) from exc


def _locate_deep(text: str) -> tuple[int, tuple] | None:
    """Offset and path of the first bracket that opens level MAX_DEPTH + 1 (strings skipped)."""
    frames: list[list] = []  # per open container: ["[", index] or ["{", key]
    last = ""
    for match in _TOKEN.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            if len(frames) >= MAX_DEPTH:
                return match.start(), tuple(_part(f) for f in frames)
            frames.append(["[", 0] if token == "[" else ["{", ""])
        elif token in ("]", "}"):
            if frames:
                frames.pop()
        elif token == ",":
            if frames and frames[-1][0] == "[":
                frames[-1][1] += 1
        elif token == ":":
            if frames and frames[-1][0] == "{":
                frames[-1][1] = last
        else:
            last = token
    return None


def _part(frame: list) -> object:
    if frame[0] == "[":
        return frame[1]
    try:
        return json.loads(frame[1][:PATH_MAX_CHARS * 4]) if frame[1] else ""
    except ValueError:
        return frame[1][1:-1]


def _path(parts: tuple) -> str:
    """A JSON path as field paths are written, cut in the middle when long."""
    text = "".join(_steps(parts)) or "the top level"
    if len(text) <= PATH_MAX_CHARS:
        return text
    half = PATH_MAX_CHARS // 2
    return f"{text[:half]}…{text[-half:]} ({len(parts)} levels)"


def _steps(parts: tuple) -> Iterator[str]:
    for i, part in enumerate(parts):
        if isinstance(part, int):
            yield f"[{part}]"
        else:
            step = member_path("x", part)[1:]  # ".Key" or '["odd key"]'
            yield step[1:] if i == 0 and step.startswith(".") else step


def _error(path: str | PathLike, what: str, **details: object) -> SpecError:
    return SpecError(f"{path}: {what}", path=str(path), **details)
