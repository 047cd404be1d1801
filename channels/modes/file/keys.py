"""Which object keys File mode may write under its destination directory.

A key becomes a path below DEST by joining it there, so a key that is
absolute, climbs out (``..``), has empty or ``.`` segments, holds a NUL, or
names a file that is also another key's folder cannot be written faithfully.
All of them are refused before the first byte is written, listed together.
"""

from __future__ import annotations

from collections.abc import Iterable

from channels.errors import UnsafeKeyError
from channels.listing import ObjectRef

#: Names File mode keeps for itself in DEST (state journal, temporary files).
STATE_PREFIX = ".channels-download"
TMP_MARK = ".channels-tmp-"
#: The longest file or folder name most filesystems take (bytes).
NAME_MAX = 255
#: How many offending keys an error message lists.
SHOWN = 20


def unsafe_reason(key: str) -> str | None:
    """Why ``key`` cannot be written below a directory, or None if it can.

    Example:
        >>> unsafe_reason("train/a.rec") is None
        True
        >>> unsafe_reason("a/../../x")
        "'..' segment"
    """
    if (key and key[0] != "/" and key[-1] != "/" and "//" not in key and "\0" not in key and "/." not in "/" + key
            and ".channels-" not in key and len(key.encode()) <= NAME_MAX):
        return None  # the common case, decided with a few substring scans
    if not key:
        return "empty key (the object is the prefix itself)"
    if "\0" in key:
        return "NUL byte"
    if key.startswith("/"):
        return "absolute (starts with '/')"
    segments = key.split("/")
    for seg in segments:
        if seg == "":
            return "empty segment ('//' or a trailing '/')"
        if seg == "..":
            return "'..' segment"
        if seg == ".":
            return "'.' segment"
        if len(seg.encode()) > NAME_MAX:
            return f"a segment longer than {NAME_MAX} bytes"
    if segments[0].startswith(STATE_PREFIX) or TMP_MARK in segments[-1]:
        return f"name reserved for File mode's own files ({STATE_PREFIX}*, *{TMP_MARK}*)"
    return None


def check_keys(refs: Iterable[ObjectRef], source: str = "") -> None:
    """Raise UnsafeKeyError listing every key that cannot land below DEST.

    Also refuses a key that is another key's folder (``a`` and ``a/b``): both
    cannot exist on a filesystem.

    Raises:
        UnsafeKeyError: ``details["keys"]`` holds ``(key, reason)`` pairs
            (the first 1000).
    """
    bad: list[tuple[str, str]] = []
    keys: set[str] = set()
    folders: set[str] = set()
    for ref in refs:
        key = ref.key
        reason = unsafe_reason(key)
        if reason is not None:
            bad.append((key, reason))
            continue
        keys.add(key)
        cut = key.rfind("/")
        while cut > 0:
            folder = key[:cut]
            if folder in folders:
                break
            folders.add(folder)
            cut = key.rfind("/", 0, cut)
    bad.extend((k, "also the folder of other keys") for k in sorted(keys & folders))
    if not bad:
        return
    shown = ", ".join(f"{k!r} ({why})" for k, why in bad[:SHOWN])
    more = f" and {len(bad) - SHOWN} more" if len(bad) > SHOWN else ""
    where = f" in {source}" if source else ""
    raise UnsafeKeyError(
        f"{len(bad)} object key(s){where} cannot be written below the destination directory: "
        f"{shown}{more}. Nothing was downloaded: rename or remove these objects, or download a "
        "prefix that excludes them", keys=bad[:1000], source=source)
