"""Checking job definitions: field paths, values shown, common checks.

A check never raises: it appends ``(field path, message)`` to a
:class:`Problems` list so that the caller can report every problem at once.
Paths are written as in the API's JSON (``InputDataConfig[2].ChannelName``);
each message shows the value (truncated when long), the limit and the fix.
Every spec dataclass checks itself with :func:`validated` in
``__post_init__``; :func:`deferred` lets a parser build a whole tree first and
check it once, so that it can report every problem.
"""

from __future__ import annotations

import contextlib
import contextvars
import difflib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping

from channels.errors import SpecError

Problem = tuple[str, str]

SHOW_MAX_CHARS = 60
"""Longest rendering of a value inside a message; longer ones are cut with "…"."""

_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://(.*)$", re.DOTALL)
_BUCKET_SCHEMES = ("s3", "s3a", "gs", "gcs")  # schemes whose URL must name a bucket


def join(prefix: str, path: str) -> str:
    """Join two field paths: ``join("A[0]", "B.C") == "A[0].B.C"``."""
    if not prefix or not path:
        return prefix or path
    return prefix + ("" if path.startswith("[") else ".") + path


def show(value: object) -> str:
    """Render a value for a message: JSON where it can, cut to SHOW_MAX_CHARS.

    Bounded whatever the value: a 50 MB list or a 5,000-digit integer costs no
    more than a short one, and the text never holds a raw line break.
    """
    if isinstance(value, str) and len(value) > SHOW_MAX_CHARS:
        return _printable(json.dumps(value[:SHOW_MAX_CHARS], ensure_ascii=False)[:-1] + f'…" ({len(value)} chars)')
    pieces, size = [], 0
    for piece in _pieces(value):
        pieces.append(piece)
        size += len(piece)
        if size > SHOW_MAX_CHARS:
            break
    text = "".join(pieces)
    return _printable(text if len(text) <= SHOW_MAX_CHARS else text[:SHOW_MAX_CHARS] + "…")


def _printable(text: str) -> str:
    """Lone surrogates (from a ``\\ud800`` escape) written as escapes, so that printing never fails."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def _pieces(value: object) -> Iterator[str]:
    """The JSON text of a value, piece by piece, so that show() can stop early."""
    if isinstance(value, str):
        yield json.dumps(value[:SHOW_MAX_CHARS + 1], ensure_ascii=False)
    elif value is None or isinstance(value, bool):
        yield json.dumps(value)
    elif isinstance(value, int):
        sign = "a negative" if value < 0 else "an"
        yield str(value) if value.bit_length() <= 128 else f"<{sign} integer of {_digits(value)} digits>"
    elif isinstance(value, float):
        yield json.dumps(value) if math.isfinite(value) else repr(value)
    elif isinstance(value, Mapping):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ", " if i else ""
            yield from _pieces(key if isinstance(key, str) else str(key))
            yield ": "
            yield from _pieces(item)
        yield "}"
    elif isinstance(value, (list, tuple)):
        yield "["
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _pieces(item)
        yield "]"
    else:
        yield json.dumps(repr(value)[:SHOW_MAX_CHARS + 1], ensure_ascii=False)[1:-1]


def quote_hint(value: object) -> str:
    """How to write a non-string value as the string the API wants: ``quote it, as "10"``."""
    text = show(value)
    if text.endswith("…") or text.startswith("<"):  # cut, or a number too long to write out
        return "quote it (write it as a JSON string)"
    return f"quote it, as {json.dumps(text, ensure_ascii=False)}"


def _digits(value: int) -> str:
    """About how many decimal digits an integer has, without converting it (Python caps that at 4,300)."""
    return f"about {int(abs(value).bit_length() * 0.30103) + 1:,}"


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")


def member_path(prefix: str, key: object) -> str:
    """The path of an object's member: ``A.Key``, or ``A["odd key"]`` where the key is not a plain name."""
    if isinstance(key, str) and _IDENTIFIER.fullmatch(key):
        return join(prefix, key)
    return f"{prefix}[{show(key)}]"


def type_name(value: object) -> str:
    """The JSON name of a value's type ("string", "integer", "object", ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (str, "string"),
                       (Mapping, "object"), ((list, tuple), "array")):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def a_type(value: object) -> str:
    """type_name with its article: "an integer", "a string", "null"."""
    name = type_name(value)
    return name if name == "null" else ("an " if name[0] in "aeiou" else "a ") + name


def summary(problems: list[Problem], what: str) -> str:
    """The multi-line text of a SpecError: a count, then one line per problem."""
    lines = [f"{len(problems)} problem(s) in {what}"]
    lines += [f"  {path or '(top level)'}: {message}" for path, message in problems]
    return "\n".join(lines)


def natural_key(path: str) -> list[object]:
    """Sort key that puts ``InputDataConfig[2]`` before ``InputDataConfig[10]``."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def _under(path: str, parent: str) -> bool:
    return path.startswith(parent) and path[len(parent):len(parent) + 1] in (".", "[")


class Problems:
    """An ordered list of (field path, message), plus the checks that fill it.

    ``broken`` holds paths whose container was unusable (not an object,
    missing); later problems at or below them are noise and :meth:`result`
    drops them.
    """

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.broken: set[str] = set()

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def add(self, path: str, message: str) -> None:
        self.items.append((path, message))

    def extend(self, prefix: str, problems: Iterable[Problem]) -> None:
        for path, message in problems:
            self.add(join(prefix, path), message)

    def result(self) -> list[Problem]:
        """Problems sorted by path (stable), the noise about broken containers left out."""
        kept, seen = [], set()
        for path, message in self.items:
            if (path in self.broken and path in seen) or any(_under(path, b) for b in self.broken):
                continue
            seen.add(path)
            kept.append((path, message))
        return sorted(kept, key=lambda p: natural_key(p[0]))

    # -- checks: each returns True when the value passed -----------------

    def choice(self, path: str, value: object, choices: tuple[str, ...], *,
               required: bool = False) -> bool:
        """One of a fixed set of strings (case matters, as in the API)."""
        valid = " | ".join(choices)
        if value is None and not required:
            return True
        if value is None:
            self.add(path, f"missing (required); set it to one of {valid}")
            return False
        if value in choices:
            return True
        hint = "use one of those"
        if isinstance(value, str):
            same = [c for c in choices if c.lower() == value.lower()]
            close = same or difflib.get_close_matches(value, choices, n=1, cutoff=0.6)
            if close:
                hint = f'did you mean "{close[0]}"? (case matters)'
        self.add(path, f"{show(value)} is not one of {valid}; {hint}")
        return False

    def integer(self, path: str, value: object, *, minimum: int,
                maximum: int | None = None, required: bool = True) -> bool:
        """An integer (not a boolean, not a float) within [minimum, maximum]."""
        limit = f"an integer >= {minimum}" if maximum is None else f"an integer from {minimum} to {maximum}"
        if value is None and not required:
            return True
        if value is None:
            self.add(path, f"missing (required); set it to {limit}")
            return False
        if isinstance(value, bool) or not isinstance(value, int):
            numeric = isinstance(value, str) and value.strip().lstrip("-").isdigit()
            fix = f"write it without quotes: {value.strip()}" if numeric else f"use {limit}"  # type: ignore[union-attr]
            self.add(path, f"{show(value)} is {a_type(value)}, not an integer; must be {limit}: {fix}")
            return False
        if value < minimum or (maximum is not None and value > maximum):
            self.add(path, f"{show(value)} is out of range; must be {limit}")
            return False
        return True

    def string(self, path: str, value: object, *, max_len: int, min_len: int = 0,
               required: bool = False, pattern: re.Pattern[str] | None = None,
               pattern_help: str = "") -> bool:
        """A string of min_len..max_len chars, matching pattern (fully) if given."""
        if value is None and not required:
            return True
        if value is None:
            self.add(path, f"missing (required); set it to a string of {max(min_len, 1)} to {max_len} chars")
            return False
        if not isinstance(value, str):
            self.add(path, f"{show(value)} is {a_type(value)}, not a string; quote it")
            return False
        if len(value) < min_len:
            self.add(path, f"{show(value)} is shorter than the minimum of {min_len} char(s); give a value")
            return False
        if len(value) > max_len:
            self.add(path, f"{show(value)} is longer than the limit of {max_len} chars; shorten it")
            return False
        if pattern is not None and not pattern.fullmatch(value):
            self.add(path, f"{show(value)} does not match the pattern {pattern.pattern}"
                           f"{f' ({pattern_help})' if pattern_help else ''}; rename it")
            return False
        return True

    def url(self, path: str, value: object, *, max_len: int, required: bool = True) -> bool:
        """A URL with a scheme (``s3://bucket/prefix``, ``file:///dir``, ``memory://x``)."""
        example = "s3://bucket/prefix/"
        if value is None and required:
            self.add(path, f"missing (required); set it to a URL such as {example} (at most {max_len} chars)")
            return False
        if not self.string(path, value, max_len=max_len, min_len=1, required=required):
            return False
        if value is None:
            return True
        match = _URL.match(value)  # type: ignore[arg-type]
        if match is None:
            self.add(path, f"{show(value)} has no scheme; must be a URL such as {example} "
                           f"(at most {max_len} chars): add the scheme, e.g. s3://")
            return False
        scheme, rest = match.groups()
        if not rest or (scheme.lower() in _BUCKET_SCHEMES and not rest.split("/", 1)[0]):
            self.add(path, f"{show(value)} names no bucket; must be a URL such as {example}")
            return False
        return True

    def keys(self, path: str, obj: Mapping[str, object], known: tuple[str, ...], *,
             ignored: tuple[str, ...] = (), unsupported: Mapping[str, str] | None = None,
             strict: bool) -> None:
        """Report keys of an API object that channels cannot honour.

        Args:
            path: the object's field path.
            obj: the object as parsed from JSON.
            known: keys channels reads.
            ignored: real API keys that do not touch the data path (accepted, dropped).
            unsupported: real API keys channels refuses, each with the reason.
            strict: report every other key too; otherwise report only those
                that look like a typo of a known, ignored or unsupported key.
        """
        unsupported = unsupported or {}
        everything = (*known, *ignored, *unsupported)
        for key in obj:
            where = member_path(path, key)
            if key in known or key in ignored:
                continue
            if key in unsupported:
                self.add(where, f"not supported by channels: {unsupported[key]}")
                continue
            same = [k for k in everything if isinstance(key, str) and k.lower() == key.lower()]
            close = same or difflib.get_close_matches(str(key), everything, n=1, cutoff=0.8)
            if close:
                self.add(where, f'unknown key; did you mean "{close[0]}"? (keys are case-sensitive PascalCase)')
            elif strict:
                self.add(where, f"unknown key; valid keys here: {', '.join(known)}")


def as_object(p: Problems, path: str, value: object, *, required: bool = False) -> dict:
    """``value`` if it is a JSON object; else report it, mark the path broken, and give {}."""
    if isinstance(value, Mapping):
        return dict(value)
    if value is None and not required:
        return {}
    p.add(path, "missing (required)" if value is None else f"{show(value)} is {a_type(value)}, not an object")
    p.broken.add(path)
    return {}


# While set, __post_init__ skips its check: Job.from_dict builds the whole
# tree first, then checks it once so that it can report every problem.
_DEFERRED: contextvars.ContextVar[bool] = contextvars.ContextVar("channels_spec_deferred", default=False)


def validated(obj: object, what: str) -> None:
    if _DEFERRED.get():
        return
    problems = obj._problems()  # type: ignore[attr-defined]
    if problems:
        raise SpecError(summary(problems, what), problems=problems)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within this block, spec objects skip their own check (the caller checks the whole tree)."""
    token = _DEFERRED.set(True)
    try:
        yield
    finally:
        _DEFERRED.reset(token)
