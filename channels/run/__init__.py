"""``channels run``: a SageMaker-style training script run unchanged, on one or more emulated hosts.

* :mod:`~channels.run.runner`: :class:`Run`, the job from start to verdict;
* :mod:`~channels.run.host`: one host's script and its channel services;
* :mod:`~channels.run.serve`: a channel served in its mode, in its own process;
* :mod:`~channels.run.output`: job names, model.tar.gz and its upload;
* :mod:`~channels.run.environment`: ``SM_*`` as the SageMaker training toolkit gives them;
* :mod:`~channels.run.entry`: ``--entry-point``, a script run as a framework container runs it;
* :mod:`~channels.run.namespace`: ``--mount-namespace``, a host's root on /opt/ml and algo-1..N resolving.
"""

from channels.run.runner import (
    DEFAULT_GRACE_SECONDS,
    EXIT_INTERRUPTED,
    EXIT_KILLED,
    EXIT_MAX_RUNTIME,
    EXIT_OK,
    EXIT_SETUP,
    HostResult,
    Outcome,
    Run,
    RunError,
    RunOptions,
    RunResult,
    host_layouts,
    install_signal_handlers,
    run_job,
)

__all__ = [
    "DEFAULT_GRACE_SECONDS", "EXIT_INTERRUPTED", "EXIT_KILLED", "EXIT_MAX_RUNTIME", "EXIT_OK", "EXIT_SETUP",
    "HostResult", "Outcome", "Run", "RunError", "RunOptions", "RunResult", "host_layouts",
    "install_signal_handlers", "run_job",
]
