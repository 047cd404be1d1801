"""The cache's index: what is kept, how big, how recently and how often read, shared by processes.

SQLite (the standard library's) in WAL mode, so that several processes on
one machine may share a cache directory: every change is one short
``BEGIN IMMEDIATE`` transaction, so two processes never both decide to use
the same free bytes, and the total of the entries stays within the limit.
Processes write their news in batches (:class:`Batch`: reads of entries,
reads of objects not kept, entries made), about once a second, not per read.

Tables::

    entries(key, size, freq, last_used)   whole objects under objects/
    seen(key, freq)                       read counts of objects not kept
    meta(name, value)                     used: bytes of entries; reads; next_aging

The files are the truth for hits (a reader opens the entry's name); the
index is the truth for the size limit and for which entry goes next.
:meth:`Index.reconcile` (when a process opens the cache) makes the two
agree again after a crash: rows without a file go, old files without a row
go, and entries over the limit go, least recently used first.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field

from channels.cache.layout import Layout
from channels.cache.policy import aging_period, choose_victims

#: Entries, least recently used first, that a process keeps in memory between batches to decide
#: whether a newcomer is worth writing (the batch then decides for good).
LRU_SNAPSHOT = 1024
#: Rows of ``seen`` kept: at least this many, or 16 per entry.
SEEN_MIN = 65536
#: Seconds a process waits for another one's transaction.
BUSY_TIMEOUT = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries(key TEXT PRIMARY KEY, size INTEGER NOT NULL, freq INTEGER NOT NULL,
                                   last_used REAL NOT NULL);
CREATE INDEX IF NOT EXISTS entries_lru ON entries(last_used);
CREATE TABLE IF NOT EXISTS seen(key TEXT PRIMARY KEY, freq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('used', 0), ('reads', 0), ('next_aging', 1024);
"""


@dataclass
class Batch:
    """A process's news since its last batch."""

    touches: dict[str, list] = field(default_factory=dict)  # key -> [last_used, reads]
    misses: dict[str, int] = field(default_factory=dict)  # key -> reads while not kept
    admits: list[tuple[str, int]] = field(default_factory=list)  # (key, size), published
    admit_bytes: int = 0

    def touch(self, key: str) -> None:
        entry = self.touches.setdefault(key, [0.0, 0])
        entry[0] = time.time()
        entry[1] += 1

    def miss(self, key: str) -> None:
        self.misses[key] = self.misses.get(key, 0) + 1

    def admit(self, key: str, size: int) -> None:
        self.admits.append((key, size))
        self.admit_bytes += size

    def __bool__(self) -> bool:
        return bool(self.touches or self.misses or self.admits)

    @property
    def size(self) -> int:
        return len(self.touches) + len(self.misses) + len(self.admits)


@dataclass
class Outcome:
    """What a batch did: entries made, refused (their files must go), evicted (theirs too)."""

    admitted: list[tuple[str, int]] = field(default_factory=list)
    rejected: list[tuple[str, int]] = field(default_factory=list)
    evicted: list[tuple[str, int]] = field(default_factory=list)


class Index:
    """One process's connection to a cache directory's index; not thread-safe (the cache locks).

    Args:
        layout: the cache's files.
        limit: the most bytes of entries.

    Raises:
        sqlite3.Error: the index cannot be opened (the cache turns it into a CacheDirError).
    """

    def __init__(self, layout: Layout, limit: int) -> None:
        self.layout = layout
        self.limit = limit
        self._db = sqlite3.connect(layout.index_path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        with self._transaction():
            for statement in _statements():
                self._db.execute(statement)
        #: Bytes of entries and the least recently used ones, as of the last batch.
        self.used = 0
        self.lru: list[tuple[str, int, int]] = []
        self._refresh()

    # ------------------------------------------------------------ reading

    def frequency(self, key: str) -> int:
        """Reads of ``key`` recorded while it was not kept (0 if none)."""
        row = self._db.execute("SELECT freq FROM seen WHERE key = ?", (key,)).fetchone()
        return row[0] if row else 0

    def sizes(self) -> dict[str, int]:
        """Every entry's key and size."""
        return dict(self._db.execute("SELECT key, size FROM entries"))

    def _refresh(self) -> None:
        self.used = self._meta("used")
        self.lru = self._db.execute("SELECT key, size, freq FROM entries ORDER BY last_used LIMIT ?",
                                    (LRU_SNAPSHOT,)).fetchall()

    def _meta(self, name: str) -> int:
        return self._db.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()[0]

    # ------------------------------------------------------------ writing

    def apply(self, batch: Batch) -> Outcome:
        """Record a batch and decide its admissions, in one transaction."""
        out = Outcome()
        db = self._db
        with self._transaction():
            db.executemany("UPDATE entries SET last_used = max(last_used, ?), freq = freq + ? WHERE key = ?",
                           [(t, n, key) for key, (t, n) in batch.touches.items()])
            db.executemany("INSERT INTO seen VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET freq = freq + excluded.freq",
                           list(batch.misses.items()))
            used = self._meta("used")
            newcomers = {key for key, _ in batch.admits}
            now = time.time()
            for key, size in batch.admits:
                if db.execute("SELECT 1 FROM entries WHERE key = ?", (key,)).fetchone():
                    continue  # another process made the same entry (same bytes): keep it, count it once
                freq = max(1, self.frequency(key))
                need = used + size - self.limit
                victims: list[tuple[str, int]] = []
                if need > 0:
                    lru = db.execute("SELECT key, size, freq FROM entries ORDER BY last_used")
                    victims = choose_victims(lru, need, freq, newcomers) or []
                    if sum(s for _, s in victims) < need:
                        out.rejected.append((key, size))
                        continue
                for victim, vsize in victims:
                    row = db.execute("DELETE FROM entries WHERE key = ? RETURNING freq", (victim,)).fetchone()
                    db.execute("INSERT OR REPLACE INTO seen VALUES (?, ?)", (victim, row[0] if row else 0))
                    used -= vsize
                    out.evicted.append((victim, vsize))
                db.execute("INSERT INTO entries VALUES (?, ?, ?, ?)", (key, size, freq, now))
                db.execute("DELETE FROM seen WHERE key = ?", (key,))
                used += size
                out.admitted.append((key, size))
            db.execute("UPDATE meta SET value = ? WHERE name = 'used'", (used,))
            self._age(sum(n for _, n in batch.touches.values()) + sum(batch.misses.values()))
        self._refresh()
        return out

    def _age(self, reads: int) -> None:
        """Count reads; halve every count once a period of them has passed; bound ``seen``."""
        db = self._db
        db.execute("UPDATE meta SET value = value + ? WHERE name = 'reads'", (reads,))
        total, due = self._meta("reads"), self._meta("next_aging")
        if total < due:
            return
        entries = db.execute("SELECT count(*) FROM entries").fetchone()[0]
        db.execute("UPDATE entries SET freq = freq / 2")
        db.execute("UPDATE seen SET freq = freq / 2")
        db.execute("DELETE FROM seen WHERE freq = 0")
        db.execute("UPDATE meta SET value = ? WHERE name = 'next_aging'", (total + aging_period(entries),))
        cap = max(SEEN_MIN, 16 * entries)
        db.execute("DELETE FROM seen WHERE key IN (SELECT key FROM seen ORDER BY freq LIMIT "
                   "max(0, (SELECT count(*) FROM seen) - ?))", (cap,))

    def reconcile(self) -> list[str]:
        """Make the index and the files agree (after crashes) and the entries fit the limit.

        Returns the paths of files to remove (the caller removes them).
        """
        layout = self.layout
        db = self._db
        remove: list[str] = []
        with self._transaction():
            rows = dict(db.execute("SELECT key, size FROM entries").fetchall())
            for key, path, size, mtime in layout.entries():
                want = rows.pop(key, None)
                if want is None:
                    if layout.is_orphan_age(mtime):  # a writer renames, then records: give it time
                        remove.append(path)
                elif want != size:  # damaged: drop the row and the file
                    db.execute("DELETE FROM entries WHERE key = ?", (key,))
                    remove.append(path)
            db.executemany("DELETE FROM entries WHERE key = ?", [(k,) for k in rows])  # rows without files
            used = db.execute("SELECT coalesce(sum(size), 0) FROM entries").fetchone()[0]
            for key, size in db.execute("SELECT key, size FROM entries ORDER BY last_used").fetchall():
                if used <= self.limit:
                    break
                db.execute("DELETE FROM entries WHERE key = ?", (key,))
                remove.append(layout.entry_path(key))
                used -= size
            db.execute("UPDATE meta SET value = ? WHERE name = 'used'", (used,))
        self._refresh()
        return remove

    def close(self) -> None:
        self._db.close()

    def _transaction(self):
        return _Transaction(self._db)


def _statements() -> list[str]:
    return [s.strip() for s in _SCHEMA.split(";") if s.strip()]


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error): one writer at a time, across processes."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> sqlite3.Connection:
        self._db.execute("BEGIN IMMEDIATE")
        return self._db

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")
