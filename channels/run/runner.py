"""``channels run``: a training script run as a training job would run it.

For each host (``algo-1`` .. ``algo-N``) the runner

1. lays out the container under the host's root (:mod:`channels.container`):
   the config files, the directories, and the environment the SageMaker
   training toolkit would give the script (:mod:`channels.run.environment`);
2. serves each channel in its input mode (:mod:`channels.run.serve`):
   Pipe FIFOs and FastFile mounts stay up while the script runs, File
   channels are downloaded before it starts;
3. runs the command in its own process group, with the host's environment,
   in the current directory (or, for ``--entry-point``, as a framework
   container runs a script: :mod:`channels.run.entry`); with
   ``mount_namespace``, in a mount namespace of its own where the host's root
   is ``/opt/ml`` and ``algo-1..N`` resolve (:mod:`channels.run.namespace`);
4. enforces the StoppingCondition: ``MaxRuntimeInSeconds`` after the script
   started it gets SIGTERM, and SIGKILL ``grace_seconds`` later (120 by
   default, SageMaker's window); the clock starts with the script, so File
   mode's download does not count against it here;
5. tears the services down (always: FIFOs removed, mounts unmounted).

Then every host's ``model/`` becomes ``model.tar.gz`` and ``output/data/``
``output.tar.gz``, uploaded under ``<S3OutputPath>/<TrainingJobName>/output/``
(:mod:`channels.run.output`). A failed script's reason goes to
``output/failure`` unless the script wrote one. If one host's script fails,
the others are stopped (SIGTERM, grace, SIGKILL), as a job fails as a whole.

Roots: with one host the host's root is ``root`` itself (``--root /opt/ml``
gives SageMaker's paths); with several, each host has its own
``root/algo-k``, like separate machines. The script sees its host's root
through ``SAGEMAKER_BASE_DIR`` and the ``SM_*`` paths, or at ``/opt/ml`` in
its own mount namespace. The runner's own files (service logs, the job's
JSON, the archives, the namespace's hosts file) live in ``root/.channels``.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from channels.cache import CacheConfig
from channels.container import SAGEMAKER_ROOT, Layout, write_config, write_failure
from channels.errors import ChannelsError
from channels.run import namespace
from channels.run.entry import EntryPoint
from channels.run.environment import Machine, training_environment
from channels.run.host import HostResult, HostRun, Outcome
from channels.run.output import (
    MODEL_ARCHIVE,
    OUTPUT_ARCHIVE,
    Packed,
    generate_job_name,
    output_url,
    pack,
    upload,
)
from channels.run.serve import HostSpec, remove_stale_fifos
from channels.sharding import host_name
from channels.spec import Job
from channels.store import Store

#: SageMaker's window between SIGTERM and SIGKILL.
DEFAULT_GRACE_SECONDS = 120.0
#: Where a run's files go when no root is given: ``./.channels-run/<job name>``.
DEFAULT_ROOT_PARENT = ".channels-run"
#: The runner's own files, under the run's root.
RUNNER_DIR = ".channels"

# Exit statuses of ``channels run`` (a script's own status passes through).
EXIT_OK = 0
EXIT_SETUP = 2  # bad job, a channel that could not be served, an upload that failed
EXIT_MAX_RUNTIME = 124  # stopped at MaxRuntimeInSeconds; the script ended within the grace period
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM to channels run itself
EXIT_KILLED = 137  # the script outlived the grace period and got SIGKILL


class RunError(ChannelsError, ValueError):
    """A run that cannot start (bad options, a root that holds someone else's files)."""


@dataclass(frozen=True)
class RunOptions:
    """One ``channels run``.

    Attributes:
        job: the job definition.
        command: the training command and its arguments.
        root: the run's root (default ``./.channels-run/<job name>``).
        hosts: host count (default: the job's InstanceCount).
        job_name: TrainingJobName (default: the job's, else generated).
        grace_seconds: seconds between SIGTERM and SIGKILL.
        max_runtime_seconds: overrides the job's MaxRuntimeInSeconds.
        endpoint_url: S3 endpoint for the services, the upload and the script.
        pipe_epochs: epochs the Pipe server serves (None: until stopped).
        upload: upload model.tar.gz and output.tar.gz (False: keep them local).
        cwd: the script's working directory (default: the current one).
        plan: a job plan (``channels plan``) every host reads instead of listing.
        shared_plan: with several hosts and no ``plan``, list every channel
            once, here, and hand that plan to the hosts (False: each host
            lists the store itself).
        entry_point: a framework script to run as a framework container does
            (instead of ``command``): hyperparameters as ``--name value``
            arguments, in the script's folder.
        mount_namespace: run each host's script in a mount namespace of its
            own: its root on ``/opt/ml``, ``algo-1..N`` in ``/etc/hosts``.
        cache: a local cache for the Pipe and FastFile channels
            (:class:`channels.cache.CacheConfig`); each host keeps its own in
            ``<directory>/<host>`` with the whole size limit, as each
            instance has its own disk. File channels are on disk already.
    """

    job: Job
    command: tuple[str, ...]
    root: Path | None = None
    hosts: int | None = None
    job_name: str | None = None
    grace_seconds: float = DEFAULT_GRACE_SECONDS
    max_runtime_seconds: float | None = None
    endpoint_url: str | None = None
    pipe_epochs: int | None = None
    upload: bool = True
    cwd: Path | None = None
    plan: str | None = None
    shared_plan: bool = True
    entry_point: Path | None = None
    mount_namespace: bool = False
    cache: CacheConfig | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "command", tuple(self.command))
        if self.entry_point is not None and self.command:
            raise RunError("give --entry-point SCRIPT or a command after --, not both")
        if not self.command and self.entry_point is None:
            raise RunError("no command to run: give --entry-point train.py, or a command after --, e.g. "
                           "channels run job.json -- python train.py")
        if self.hosts is not None and (not isinstance(self.hosts, int) or self.hosts < 1):
            raise RunError(f"--hosts {self.hosts!r} must be a positive integer", hosts=self.hosts)
        if self.grace_seconds < 0:
            raise RunError(f"--grace-seconds {self.grace_seconds} must be >= 0", grace=self.grace_seconds)
        if self.max_runtime_seconds is not None and self.max_runtime_seconds <= 0:
            raise RunError(f"max runtime {self.max_runtime_seconds} s must be > 0")
        if self.pipe_epochs is not None and self.pipe_epochs < 1:
            raise RunError(f"--pipe-epochs {self.pipe_epochs} must be >= 1")

    @property
    def host_count(self) -> int:
        return self.hosts if self.hosts is not None else self.job.resource_config.instance_count

    @property
    def max_runtime(self) -> float:
        if self.max_runtime_seconds is not None:
            return float(self.max_runtime_seconds)
        return float(self.job.stopping_condition.max_runtime_seconds)


@dataclass
class RunResult:
    """How a run ended.

    Attributes:
        job_name: the TrainingJobName used.
        root: the run's root.
        outcome: the job's outcome (the worst host's).
        exit_code: what ``channels run`` exits with.
        message: one line saying why it ended.
        hosts: each host's result, in host order.
        model: the model archive written (None when no script ran).
        model_url: where it was uploaded (None when not uploaded).
        output_url: where output.tar.gz was uploaded.
        upload_error: why the upload failed, if it did.
    """

    job_name: str
    root: Path
    outcome: Outcome
    exit_code: int
    message: str
    hosts: list[HostResult] = field(default_factory=list)
    model: Packed | None = None
    model_url: str | None = None
    output_url: str | None = None
    upload_error: str | None = None


def host_layouts(root: Path, hosts: int) -> list[Layout]:
    """Each host's container root: ``root`` for one host, ``root/algo-k`` for several."""
    if hosts == 1:
        return [Layout(root)]
    return [Layout(root / host_name(i)) for i in range(hosts)]


def default_root(job_name: str, cwd: Path | None = None) -> Path:
    return (cwd or Path.cwd()) / DEFAULT_ROOT_PARENT / job_name


class Run:
    """A job being run; :meth:`stop` may be called from any thread (or a signal handler)."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        job = options.job
        self.job_name = options.job_name or job.training_job_name or generate_job_name()
        self.root = Path(options.root or default_root(self.job_name, options.cwd)).absolute()
        self.runner_dir = self.root / RUNNER_DIR
        self.layouts = host_layouts(self.root, options.host_count)
        self.store = Store.from_env(options.endpoint_url)
        self.entry = EntryPoint(options.entry_point) if options.entry_point is not None else None
        self.command = self.entry.command(job) if self.entry else list(options.command)
        self.cwd = self.entry.source_dir if self.entry else options.cwd
        self._stop_reason: str | None = None
        self._hosts: list[HostRun] = []
        #: Plain-language notes for the user (printed by the CLI before the run).
        self.warnings: list[str] = _warnings(options.job, len(self.layouts))
        #: Whether each host's script gets a mount namespace of its own (asked for, and possible).
        self.namespaced = options.mount_namespace and self._namespace_possible()

    # ---------------------------------------------------------------- setup

    def prepare(self) -> list[HostRun]:
        """Check the root, write every host's container layout, and build the host runs."""
        o = self.options
        fresh = not self.runner_dir.exists()
        for layout in self.layouts:
            _claim(layout, fresh)
        self.runner_dir.mkdir(parents=True, exist_ok=True)
        job_path = self.runner_dir / "job.json"
        o.job.dump(job_path)
        count = len(self.layouts)
        plan = self.plan_for_hosts()
        extra = self.entry.hyperparameters() if self.entry else None
        machine = Machine.probe()
        hosts_file = self.runner_dir / "hosts"
        if self.namespaced:
            hosts_file.write_text(namespace.hosts_text(count), encoding="utf-8")
        runs = []
        for index, layout in enumerate(self.layouts):
            write_config(o.job, layout, index, count, extra)
            seen = Layout(SAGEMAKER_ROOT) if self.namespaced else layout  # the root as the script sees it
            env = training_environment(o.job, seen, index, count, job_name=self.job_name, machine=machine,
                                       extra_hyperparameters=extra)
            if o.endpoint_url:
                env["AWS_ENDPOINT_URL_S3"] = o.endpoint_url
            spec = HostSpec(o.job, job_path, layout, index, count, env, self.runner_dir,
                            o.endpoint_url, o.pipe_epochs, plan, o.cache)
            remove_stale_fifos(layout, spec.channels_in("Pipe"))
            command = self.command
            if self.namespaced:
                command = namespace.wrap(command, str(layout.root), str(hosts_file), spec.host)
            runs.append(HostRun(spec, command, cwd=self.cwd, max_runtime=o.max_runtime,
                                grace_seconds=o.grace_seconds, prefix_output=count > 1))
        self._hosts = runs
        return runs

    def plan_for_hosts(self) -> str | None:
        """The plan the hosts read: the one given (checked against the job), else, with several
        hosts, one made now by listing every channel once (``RUNNER_DIR/plan.parquet``)."""
        from channels.plan import load_plan, make_plan, write_plan

        o = self.options
        if o.plan is not None:
            load_plan(o.plan, store=self.store).check(o.job)
            return o.plan
        if len(self.layouts) == 1 or not o.shared_plan:
            return None
        path = self.runner_dir / "plan.parquet"
        write_plan(make_plan(o.job, store=self.store), str(path))
        return str(path)

    # ---------------------------------------------------------------- running

    def _namespace_possible(self) -> bool:
        """Try a namespace once; if none can be made, say what that costs (in ``warnings``)."""
        with tempfile.TemporaryDirectory(prefix="channels-probe-") as scratch:
            hosts = Path(scratch) / "hosts"
            hosts.write_text(namespace.hosts_text(len(self.layouts)), encoding="utf-8")
            why = namespace.probe(str(hosts), scratch)
        if why is not None:
            self.warnings.append(namespace.unavailable_note(len(self.layouts), why))
        return why is None

    def stop(self, reason: str = "interrupted") -> None:
        """Stop every host (SIGTERM to the scripts, SIGKILL after the grace period).

        Lock-free, so that a signal handler may call it at any point.
        """
        if self._stop_reason is None:
            self._stop_reason = reason
        for h in self._hosts:
            h.request_stop(reason)

    def execute(self) -> RunResult:
        """Run every host to the end, then pack and upload; never raises for a script's failure."""
        hosts = self.prepare()
        if self._stop_reason is not None:  # stopped while preparing
            self.stop(self._stop_reason)
        threads = [threading.Thread(target=h.run, name=f"channels-run-{h.spec.host}", daemon=True)
                   for h in hosts]
        for t in threads:
            t.start()
        interrupts = 0
        while any(t.is_alive() for t in threads):
            try:
                if self._stop_reason is None and any(
                        h.result is not None and h.result.outcome is Outcome.FAILED for h in hosts):
                    self.stop("peer-failed")
                for t in threads:
                    t.join(0.05)
            except KeyboardInterrupt:
                # First Ctrl-C: stop as the platform would (SIGTERM, grace period).
                # Second: no more grace; the scripts get SIGKILL now. Either way the
                # host threads still tear their services down before we return.
                interrupts += 1
                self.stop("interrupted")
                if interrupts > 1:
                    for h in hosts:
                        h.kill_now()
        results = [h.result or HostResult(h.spec.host, Outcome.FAILED, None, "the host did not report")
                   for h in hosts]
        return self.finish(results)

    # ---------------------------------------------------------------- ending

    def finish(self, results: list[HostResult]) -> RunResult:
        """Write failure reasons, pack every host's model/ and output/data/, upload both."""
        o = self.options
        outcome, code, message = _verdict(results, o)
        for layout, r in zip(self.layouts, results, strict=True):
            if (r.outcome in (Outcome.FAILED, Outcome.KILLED) and r.script_started) or r.setup_failed:
                write_failure(layout, r.reason)
        result = RunResult(self.job_name, self.root, outcome, code, message, results)
        if not any(r.script_started for r in results):
            return result
        result.model = pack([lay.model_dir for lay in self.layouts], self.runner_dir / MODEL_ARCHIVE)
        output = pack([lay.output_data_dir for lay in self.layouts], self.runner_dir / OUTPUT_ARCHIVE)
        if not o.upload:
            return result
        base = o.job.output_data_config.s3_output_path
        try:
            result.model_url = upload(result.model.path, output_url(base, self.job_name, MODEL_ARCHIVE),
                                      self.store)
            result.output_url = upload(output.path, output_url(base, self.job_name, OUTPUT_ARCHIVE), self.store)
        except Exception as exc:  # noqa: BLE001 - any store error ends the same way: reported, exit 2
            result.upload_error = f"{type(exc).__name__}: {exc}"
            result.message += f"; uploading to {base} failed: {result.upload_error}"
            if result.exit_code == EXIT_OK:
                result.exit_code = EXIT_SETUP
                result.outcome = Outcome.FAILED
            write_failure(self.layouts[0], f"ClientError: uploading the model to {base} failed: {exc}")
        return result


def run_job(options: RunOptions) -> RunResult:
    """Run a job to the end (see the module docstring); the CLI's engine.

    Raises:
        RunError: the root holds files that ``channels run`` did not put there.
        SpecError, ShardingError: a job or host count that cannot run.
    """
    return Run(options).execute()


def _warnings(job: Job, hosts: int) -> list[str]:
    out = []
    sharded_fastfile = [c.name for c in job.channels
                        if job.mode_of(c) == "FastFile" and c.data_source.distribution == "ShardedByS3Key"]
    if sharded_fastfile and hosts > 1:
        out.append(f"FastFile channel(s) {', '.join(sharded_fastfile)} are ShardedByS3Key, but channels mount "
                   "shows the whole prefix on every host: each host sees every object")
    return out


def _claim(layout: Layout, fresh: bool) -> None:
    """Empty ``model/`` and ``output/`` of a root a previous run made; refuse a foreign non-empty one."""
    for d in (layout.model_dir, layout.output_dir):
        if not d.exists():
            continue
        if fresh and any(d.iterdir()):
            raise RunError(f"{d} is not empty and {layout.root} was not made by channels run: its files "
                           f"would be packed into the model; empty it or choose another --root",
                           path=str(d))
        if not fresh:
            shutil.rmtree(d)


def _verdict(results: Sequence[HostResult], o: RunOptions) -> tuple[Outcome, int, str]:
    """The job's outcome, exit status and one-line reason from every host's."""
    failed = [r for r in results if r.outcome is Outcome.FAILED]
    if failed:
        r = failed[0]
        code = EXIT_SETUP if r.setup_failed else r.exit_status
        return Outcome.FAILED, code, f"Failed: {r.host}: {r.reason}"
    killed = [r for r in results if r.outcome is Outcome.KILLED]
    reasons = {r.stop_reason for r in results if r.stop_reason}
    stop_reason = "interrupted" if "interrupted" in reasons else next(iter(sorted(reasons)), None)
    why = {"max-runtime": f"MaxRuntimeInSeconds ({o.max_runtime:g} s) reached",
           "interrupted": "interrupted", "peer-failed": "another host failed"}.get(stop_reason or "", "stopped")
    if killed:
        names = ", ".join(r.host for r in killed)
        return (Outcome.KILLED, EXIT_KILLED,
                f"Stopped ({why}): {names} ignored SIGTERM for the {o.grace_seconds:g} s grace period "
                f"and got SIGKILL")
    stopped = [r for r in results if r.outcome is Outcome.STOPPED]
    if stopped:
        code = EXIT_INTERRUPTED if stop_reason == "interrupted" else EXIT_MAX_RUNTIME
        detail = "; ".join(f"{r.host}: {r.reason}" for r in stopped)
        return Outcome.STOPPED, code, f"Stopped ({why}): {detail}"
    return Outcome.COMPLETED, EXIT_OK, "Completed"


def install_signal_handlers(run: Run) -> dict[int, object]:
    """SIGTERM to ``channels run`` stops the job like Ctrl-C; returns the previous handlers."""
    def on_term(signum: int, frame: object) -> None:
        run.stop("interrupted")

    return {signal.SIGTERM: signal.signal(signal.SIGTERM, on_term)}


__all__ = [
    "DEFAULT_GRACE_SECONDS", "EXIT_INTERRUPTED", "EXIT_KILLED", "EXIT_MAX_RUNTIME", "EXIT_OK", "EXIT_SETUP",
    "HostResult", "Outcome", "Run", "RunError", "RunOptions", "RunResult", "host_layouts", "run_job",
]
