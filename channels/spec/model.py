"""The SageMaker API model that botocore ships: the shapes a training job uses, and their limits.

botocore carries AWS's own machine-readable statement of the API
(``botocore/data/sagemaker/<version>/service-2.json.gz``). Every limit the
default verdict checks (lengths, counts, ranges, patterns, enums, required
members) is read from it, so that validation follows botocore when it
updates; tests pin the seed page's numbers so that a model that contradicts
the seed is noticed.

Reading the whole model costs about 0.15 s of CPU (importing botocore's loader,
inflating and parsing some 3,000 shapes). The shapes reachable from
:data:`ROOTS` (about 130) are kept in a small JSON cache file, keyed by
botocore's version and the model files' sizes and times, under
``$CHANNELS_CACHE_DIR`` (default ``$XDG_CACHE_HOME/channels``, else
``~/.cache/channels``); a cache that cannot be written is skipped, not an
error.

Patterns are Java regular expressions; :func:`python_pattern` turns one into
Python's ``re`` syntax with Java's meaning: ``.`` matches no line terminator
(``\\n``, ``\\r``, ``\\u0085``, ``\\u2028``, ``\\u2029``), ``\\d``, ``\\w``, ``\\s``
and the POSIX classes (``\\p{Alnum}``) are ASCII, and Unicode categories
(``\\p{L}``, ``\\p{N}``, ``\\p{Z}``) become explicit ranges. Patterns are
matched whole (Java's ``matches``).
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import sys
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

ROOTS = ("TrainingJobDefinition", "CreateTrainingJobRequest")
"""The shapes a job file is: SageMaker's TrainingJobDefinition, or a CreateTrainingJob request."""

SERVICE = "sagemaker"
TYPE_RANGES = {"integer": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
"""The range a model type implies (Java's int and long) where the shape sets no min or max."""

CACHE_FORMAT = 1  # bump when the cached layout changes


@dataclass(frozen=True, slots=True, eq=False)
class Shape:
    """One shape of the model, with the constraints the default verdict checks.

    Attributes:
        name: the model's name for it (``ChannelName``, ``InputDataConfig``).
        type: structure, list, map, string, integer, long, boolean, double, float, timestamp, blob.
        min: minimum length (string), count (list, map) or value (numbers); None if unset.
        max: maximum likewise.
        pattern: the model's pattern (Java syntax), to be matched whole.
        python_pattern: the same for Python's ``re`` (with ``re.ASCII``); None if it has none
            or it could not be translated (see ``untranslated``).
        enum: the valid values of an enumerated string.
        required: a structure's required members.
        members: a structure's members, each to its shape's name.
        member: a list's element shape; key and value: a map's.
    """

    name: str
    type: str
    min: int | None = None
    max: int | None = None
    pattern: str | None = None
    python_pattern: str | None = None
    enum: tuple[str, ...] = ()
    required: tuple[str, ...] = ()
    members: Mapping[str, str] = field(default_factory=dict)
    member: str | None = None
    key: str | None = None
    value: str | None = None

    def regex(self) -> re.Pattern[str] | None:
        """The compiled pattern (compiled once per process), or None."""
        return None if self.python_pattern is None else _compile(self.python_pattern)

    def bounds(self) -> tuple[int | None, int | None]:
        """(min, max) of a number, the type's own range filling what the shape leaves unset."""
        low, high = TYPE_RANGES.get(self.type, (None, None))
        return (low if self.min is None else self.min, high if self.max is None else self.max)


class ApiModel(Mapping[str, Shape]):
    """The shapes reachable from :data:`ROOTS`, by name."""

    def __init__(self, shapes: Mapping[str, Shape], botocore_version: str,
                 untranslated: Mapping[str, str] | None = None) -> None:
        self._shapes = dict(shapes)
        self.botocore_version = botocore_version
        self.untranslated = dict(untranslated or {})  # shape name -> why its pattern is not checked

    def __getitem__(self, name: str) -> Shape:
        return self._shapes[name]

    def __iter__(self):
        return iter(self._shapes)

    def __len__(self) -> int:
        return len(self._shapes)

    def at(self, root: str, *path: str) -> Shape:
        """The shape at a member path: ``at("TrainingJobDefinition", "InputDataConfig", "[]", "ChannelName")``.

        ``"[]"`` steps into a list's element, ``"{}"`` into a map's value, ``"{key}"`` into its key.
        """
        shape = self[root]
        for step in path:
            name = {"[]": shape.member, "{}": shape.value, "{key}": shape.key}.get(step) \
                or shape.members.get(step)
            if name is None:
                raise KeyError(f"{shape.name} has no member {step!r}")
            shape = self[name]
        return shape


@functools.cache
def api_model() -> ApiModel:
    """The model of the botocore installed, from the cache file when it is current."""
    import botocore  # the package only: about 20 ms, against 100 ms for its loader

    key = _cache_key(botocore.__version__, os.path.dirname(botocore.__file__))
    path = os.path.join(cache_dir(), f"sagemaker-model-{key}.json")
    try:
        with open(path, encoding="utf-8") as f:
            cached = json.load(f)
        if cached.get("format") == CACHE_FORMAT:
            return _from_json(cached)
    except (OSError, ValueError, KeyError, TypeError):
        pass  # absent, unreadable or stale: rebuild it
    data = _extract(botocore.__version__)
    _write_atomically(path, json.dumps(data, separators=(",", ":")))
    return _from_json(data)


def cache_dir() -> str:
    """Where the extracted model is cached (see the module docstring)."""
    explicit = os.environ.get("CHANNELS_CACHE_DIR")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "channels")


def _search_roots(botocore_dir: str) -> list[str]:
    """Where botocore's Loader looks for models, in its order ($AWS_DATA_PATH, ~/.aws/models, its data)."""
    extra = [os.path.expanduser(os.path.expandvars(p)) for p in os.environ.get("AWS_DATA_PATH", "").split(os.pathsep)]
    return [*filter(None, extra), os.path.expanduser("~/.aws/models"), os.path.join(botocore_dir, "data")]


def _cache_key(version: str, botocore_dir: str) -> str:
    parts = [str(CACHE_FORMAT), version, sys.version.split()[0]]  # unicodedata follows Python's version
    for root in _search_roots(botocore_dir):
        for model in sorted(glob.glob(os.path.join(root, SERVICE, "*", "service-2.*"))):
            st = os.stat(model)
            parts.append(f"{model}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _extract(version: str) -> dict:
    """The reachable shapes of the model botocore would load, as plain JSON."""
    from botocore.loaders import (
        create_loader,  # what a botocore session uses, $AWS_DATA_PATH included
    )

    raw = create_loader(os.environ.get("AWS_DATA_PATH") or None).load_service_model(SERVICE, "service-2")["shapes"]
    shapes: dict[str, dict] = {}
    untranslated: dict[str, str] = {}
    todo = list(ROOTS)
    while todo:
        name = todo.pop()
        if name in shapes:
            continue
        src = raw[name]
        out: dict = {"type": src["type"]}
        for k in ("min", "max", "pattern", "enum", "required"):
            if k in src:
                out[k] = src[k]
        if "members" in src:
            out["members"] = {m: spec["shape"] for m, spec in src["members"].items()}
            todo.extend(out["members"].values())
        for k in ("member", "key", "value"):
            if k in src:
                out[k] = src[k]["shape"]
                todo.append(out[k])
        if "pattern" in src:
            try:
                out["python_pattern"] = python_pattern(src["pattern"])
            except ValueError as exc:
                untranslated[name] = str(exc)
        shapes[name] = out
    return {"format": CACHE_FORMAT, "botocore": version, "shapes": shapes, "untranslated": untranslated}


def _from_json(data: dict) -> ApiModel:
    shapes = {}
    for name, s in data["shapes"].items():
        shapes[name] = Shape(name=name, type=s["type"], min=s.get("min"), max=s.get("max"),
                             pattern=s.get("pattern"), python_pattern=s.get("python_pattern"),
                             enum=tuple(s.get("enum", ())), required=tuple(s.get("required", ())),
                             members=s.get("members", {}), member=s.get("member"), key=s.get("key"),
                             value=s.get("value"))
    return ApiModel(shapes, data["botocore"], data.get("untranslated"))


def _write_atomically(path: str, text: str) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError:  # a read-only home: work without the cache
        try:
            os.unlink(tmp)
        except OSError:
            pass


@functools.cache
def _compile(python: str) -> re.Pattern[str]:
    return re.compile(python, re.ASCII)


# -- Java patterns in Python's syntax ---------------------------------------------------------

JAVA_DOT = "[^\\n\\r\\x85\\u2028\\u2029]"
"""Java's ``.`` without DOTALL: anything but a line terminator."""

_POSIX = {  # java.util.regex.Pattern: POSIX character classes (US-ASCII only)
    "Lower": "a-z", "Upper": "A-Z", "ASCII": "\\x00-\\x7f", "Alpha": "a-zA-Z", "Digit": "0-9",
    "Alnum": "a-zA-Z0-9", "Punct": "!-/:-@\\[-`{-~", "Graph": "!-~", "Print": " -~", "Blank": " \\t",
    "Cntrl": "\\x00-\\x1f\\x7f", "XDigit": "0-9a-fA-F", "Space": " \\t\\n\\x0b\\f\\r",
}
_PROPERTY = re.compile(r"\{(\w+)\}|([A-Z])")


def python_pattern(java: str) -> str:
    """Translate a Java pattern of the model into Python's ``re`` syntax (compile it with ``re.ASCII``).

    Raises:
        ValueError: a construct this translation does not cover (class unions and
            intersections, ``\\Q...\\E``, named groups, negated properties inside a class).
    """
    out: list[str] = []
    i, in_class = 0, False
    while i < len(java):
        c = java[i]
        if c == "\\":
            if i + 1 == len(java):
                raise ValueError(f"pattern {java!r} ends in a backslash")
            nxt = java[i + 1]
            if nxt in "pP":
                match = _PROPERTY.match(java, i + 2)
                if match is None:
                    raise ValueError(f"pattern {java!r}: \\{nxt} without a property name")
                body = _property_body(match.group(1) or match.group(2))
                if in_class and nxt == "P":
                    raise ValueError(f"pattern {java!r}: a negated property inside a class")
                out.append(body if in_class else f"[{'^' if nxt == 'P' else ''}{body}]")
                i = match.end()
                continue
            if nxt in "QEGZz":
                raise ValueError(f"pattern {java!r}: \\{nxt} is not translated")
            out.append(java[i:i + 2])
            i += 2
            continue
        if in_class:
            if c == "[" or java.startswith("&&", i):
                raise ValueError(f"pattern {java!r}: class unions and intersections are not translated")
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            in_class = True
            start = 2 if java.startswith("[^", i) else 1
            out.append(java[i:i + start])
            i += start
            continue
        if java.startswith("(?<", i) and java[i + 3:i + 4] not in ("=", "!"):
            raise ValueError(f"pattern {java!r}: named groups are not translated")
        out.append(JAVA_DOT if c == "." else c)
        i += 1
    if in_class:
        raise ValueError(f"pattern {java!r}: an unclosed class")
    python = "".join(out)
    try:
        re.compile(python, re.ASCII)
    except re.error as exc:
        raise ValueError(f"pattern {java!r}: {exc}") from exc
    return python


def _property_body(name: str) -> str:
    """The inside of a character class for ``\\p{name}``: a POSIX class or a Unicode category."""
    if name in _POSIX:
        return _POSIX[name]
    if name.startswith("Is") and len(name) <= 4:
        name = name[2:]
    if not re.fullmatch(r"[A-Z][a-z]?", name):
        raise ValueError(f"\\p{{{name}}} is not translated")
    return _category_ranges(name)


@functools.cache
def _category_ranges(category: str) -> str:
    """Every code point whose Unicode general category starts with ``category``, as class ranges."""
    if len(category) == 1:  # a major class: runs of its letter in every other char, one per code point
        spans = [(m.start(), m.end() - 1) for m in re.finditer(f"{category}+", _category_text()[::2])]
    else:
        spans = [(m.start() // 2, m.end() // 2 - 1) for m in re.finditer(f"(?:{category})+", _category_text())]
    if not spans:
        raise ValueError(f"\\p{{{category}}}: no such Unicode category")
    return "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in spans)


@functools.cache
def _category_text() -> str:
    """The two-letter general category of every code point, end to end ("CcCc...LuLu...").

    Each category is an upper-case letter then a lower-case one, so a run found by a
    regex starts at an even offset: offset // 2 is the code point. About 0.1 s, only
    when the cache is built.
    """
    return "".join(map(unicodedata.category, map(chr, range(sys.maxunicode + 1))))
