"""``channels run JOB --entry-point train.py``: a script run the way a framework container runs it.

A SageMaker framework container (PyTorch, TensorFlow, Hugging Face) gets the
script's name and source directory as the hyperparameters
``sagemaker_program`` and ``sagemaker_submit_directory`` (the SageMaker SDK
adds them, JSON-encoded), and its training toolkit then runs, in the source
directory::

    python -- train.py --batch-size 64 --epochs 10 --lr 0.001

the job's own hyperparameters as ``--name value`` arguments, sorted by name
(``-n value`` for a one-letter name; :func:`channels.run.environment.to_cmd_args`).
A ``.sh`` entry point runs under ``/bin/sh``; anything else must be executable.

Here the source directory is the entry point's own folder, used in place
(a container would copy it to ``/opt/ml/code``), and the interpreter is the
one running ``channels`` (a container's has the framework installed).
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from channels.container import hyperparameters
from channels.errors import ChannelsError
from channels.run.environment import decode_hyperparameters, split_hyperparameters, to_cmd_args
from channels.spec import Job


class EntryPointError(ChannelsError, ValueError):
    """An entry point that cannot be run (missing, not a file, not executable)."""


@dataclass(frozen=True)
class EntryPoint:
    """A framework script: where it is, and how the container calls it.

    Attributes:
        path: the script, absolute.
    """

    path: Path

    def __post_init__(self) -> None:
        path = Path(os.path.abspath(self.path))  # ".." folded, links kept
        object.__setattr__(self, "path", path)
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is not a file"
            raise EntryPointError(f"--entry-point {path} {what}: give the training script's path",
                                  path=str(path))
        if path.suffix not in (".py", ".sh") and not os.access(path, os.X_OK):
            raise EntryPointError(f"--entry-point {path} is neither a .py nor a .sh script and is not "
                                  "executable: chmod +x it, or run it with -- COMMAND", path=str(path))

    @property
    def source_dir(self) -> Path:
        """The folder the script runs in (a container's ``/opt/ml/code``)."""
        return self.path.parent

    def hyperparameters(self) -> dict[str, str]:
        """What the SageMaker SDK adds to hyperparameters.json for a framework script (JSON strings)."""
        return {"sagemaker_program": json.dumps(self.path.name),
                "sagemaker_submit_directory": json.dumps(str(self.source_dir))}

    def command(self, job: Job) -> list[str]:
        """The script's command line, with the job's hyperparameters as arguments."""
        user, _ = split_hyperparameters(decode_hyperparameters(hyperparameters(job)))
        args = to_cmd_args(user)
        name = self.path.name
        if name.endswith(".py"):
            return [sys.executable, "--", name, *args]
        if name.endswith(".sh"):
            return ["/bin/sh", name, *args]
        return [f"./{name}", *args]
