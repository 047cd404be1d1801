"""What a finished job leaves behind: its name, model.tar.gz and output.tar.gz.

As SageMaker does at the end of a job, every host's ``model/`` is packed into
one ``model.tar.gz`` (hosts are expected not to clash on names; where they do,
the lowest-numbered host's file is kept and the clash reported) and uploaded
to ``<S3OutputPath>/<TrainingJobName>/output/model.tar.gz``; ``output/data/``
likewise becomes ``output/output.tar.gz`` beside it. Uploading goes through
:class:`~channels.store.Store` (fsspec): it is one PUT per file, not the
transport's job.
"""

from __future__ import annotations

import secrets
import tarfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from channels.spec import TRAINING_JOB_NAME_PATTERN
from channels.store import Store, join_url, protocol_of, strip_protocol

MODEL_ARCHIVE = "model.tar.gz"
OUTPUT_ARCHIVE = "output.tar.gz"


def generate_job_name(prefix: str = "channels", now: float | None = None) -> str:
    """A fresh TrainingJobName, ``channels-YYYYmmdd-HHMMSS-xxxx`` (UTC, 4 random hex digits).

    The result matches the API's pattern ``[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}``.
    """
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(time.time() if now is None else now))
    name = f"{prefix}-{stamp}-{secrets.token_hex(2)}"
    if not TRAINING_JOB_NAME_PATTERN.fullmatch(name):
        raise ValueError(f"generated job name {name!r} does not match the API's TrainingJobName pattern; "
                         "use a prefix of letters, digits and inner hyphens")
    return name


def output_url(s3_output_path: str, job_name: str, archive: str = MODEL_ARCHIVE) -> str:
    """``<S3OutputPath>/<TrainingJobName>/output/<archive>``, one slash between parts."""
    return f"{s3_output_path.rstrip('/')}/{job_name}/output/{archive}"


@dataclass(frozen=True)
class Packed:
    """An archive written from one or more hosts' directories.

    Attributes:
        path: the ``.tar.gz`` written.
        members: the relative paths of the regular files packed, sorted.
        clashes: relative paths that more than one host wrote (the first host's kept).
    """

    path: Path
    members: tuple[str, ...]
    clashes: tuple[str, ...] = ()


def pack(dirs: Sequence[Path], dest: Path) -> Packed:
    """Pack the files under ``dirs`` (merged, first directory wins) into ``dest``.

    Members are stored relative to their directory, as SageMaker's
    ``model.tar.gz`` holds ``model/``'s contents at the archive's top level.
    Symbolic links are stored as links; nothing outside ``dirs`` is read.
    """
    chosen: dict[str, Path] = {}
    clashes: list[str] = []
    for d in dirs:
        if not d.is_dir():
            continue
        for path in sorted(d.rglob("*")):
            if path.is_dir() and not path.is_symlink():
                continue
            rel = path.relative_to(d).as_posix()
            if rel in chosen:
                clashes.append(rel)
            else:
                chosen[rel] = path
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w:gz") as tar:
        for rel in sorted(chosen):
            tar.add(chosen[rel], arcname=rel, recursive=False)
    tmp.replace(dest)
    return Packed(dest, tuple(sorted(chosen)), tuple(sorted(set(clashes))))


def upload(local: Path, url: str, store: Store | None = None) -> str:
    """PUT one local file at ``url`` (any fsspec URL); returns ``url``."""
    store = store or Store.from_env()
    fs = store.filesystem(url)
    target = strip_protocol(url)
    if protocol_of(url) == "file":
        Path(target).parent.mkdir(parents=True, exist_ok=True)
    fs.put_file(str(local), target)
    return join_url(protocol_of(url), target) if protocol_of(url) != "file" else url
