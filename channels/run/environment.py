"""The environment of a training script: ``SM_*`` exactly as the SageMaker training toolkit gives it.

Inside a SageMaker framework container (PyTorch, TensorFlow, Hugging Face),
the training toolkit (``sagemaker-training``) reads the container's config
files into ``Environment()`` and starts the script with its
``to_env_vars()``. :func:`training_environment` computes that same mapping
from the same files, name for name and value for value (the tests compare it
with the toolkit's own, both ways), so a script sees the same variables
whether the toolkit or ``channels run`` starts it:

* names are ``SM_`` + the key upper-cased and nothing else:
  ``SM_HP_DROP-OUT``, ``SM_CHANNEL_VAL-DATA``;
* values are strings as they are, ``""`` for null, and compact JSON (sorted
  keys) for everything else: ``SM_HP_EPOCHS=10``, ``SM_HOSTS=["algo-1","algo-2"]``;
* hyperparameters are JSON-decoded where they parse; those named
  ``sagemaker_*`` (the SDK's) go to ``SM_FRAMEWORK_PARAMS`` and the
  toolkit's own settings, never to ``SM_HPS``, ``SM_HP_*`` or ``SM_USER_ARGS``;
* ``SM_TRAINING_ENV`` is every property of the toolkit's ``Environment``,
  ``SM_USER_ARGS`` the hyperparameters as ``--name value`` arguments;
* ``SM_NUM_GPUS`` counts ``nvidia-smi --list-gpus``' lines (0 without it),
  as the toolkit does.

Beside them: ``TRAINING_JOB_NAME`` and ``TRAINING_JOB_ARN`` (SageMaker's
documented variables; the ARN's account is :data:`LOCAL_ACCOUNT`, its region
the caller's ``AWS_REGION``), and ``SAGEMAKER_BASE_DIR``, which points the
toolkit at this host's tree instead of ``/opt/ml``. The caller's own ``SM_*``
variables pass through, except ``SM_CHANNEL_*`` and ``SM_HP_*`` (they come
from the job alone, so a run inside a run sees only its own channels) and
those set here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from channels.container import (
    INSTANCE_GROUP, LOCAL_INSTANCE_TYPE, Layout, env_name, hyperparameters, input_data_config, resource_config,
)
from channels.spec import Job

#: The toolkit's own hyperparameters (``params.SAGEMAKER_HYPERPARAMETERS``); with
#: every other ``sagemaker_*`` name they are kept out of the script's ``SM_HPS``.
SAGEMAKER_HYPERPARAMETERS = (
    "sagemaker_program", "sagemaker_submit_directory", "sagemaker_enable_cloudwatch_metrics",
    "sagemaker_region", "sagemaker_container_log_level", "sagemaker_job_name", "default_user_module_name",
    "_tuning_objective_metric", "sagemaker_s3_output",
)
SAGEMAKER_PREFIX = "sagemaker_"
#: Framework parameters that put the current instance group among the distributed ones.
DISTRIBUTION_FLAGS = (
    "sagemaker_mpi_enabled", "sagemaker_parameter_server_enabled", "sagemaker_distributed_dataparallel_enabled",
    "sagemaker_pytorch_ddp_enabled", "sagemaker_pytorch_xla_multi_worker_enabled",
    "sagemaker_multi_worker_mirrored_strategy_enabled", "sagemaker_torch_distributed_enabled",
)
#: The toolkit's log level when the job sets none (logging.INFO).
DEFAULT_LOG_LEVEL = 20
#: The account in ``TRAINING_JOB_ARN``: a job run here belongs to no AWS account.
LOCAL_ACCOUNT = "000000000000"
DEFAULT_REGION = "us-east-1"
#: Caller variables that describe another job: never passed through.
JOB_OWNED_PREFIXES = ("SM_CHANNEL_", "SM_HP_")


@dataclass(frozen=True)
class Machine:
    """What the toolkit counts on the machine the scripts run on.

    Attributes:
        cpus: ``os.cpu_count()``.
        gpus: GPUs ``nvidia-smi --list-gpus`` lists (0 without it).
        smddprun: whether ``smddprun`` is on PATH.
        smddpmprun: whether ``smddpmprun`` is on PATH.
    """

    cpus: int
    gpus: int = 0
    smddprun: bool = False
    smddpmprun: bool = False

    @classmethod
    def probe(cls, environ: Mapping[str, str] | None = None) -> Machine:
        """Count them now (one ``nvidia-smi`` call), with the PATH of ``environ``."""
        path = (os.environ if environ is None else environ).get("PATH")
        return cls(os.cpu_count() or 1, count_gpus(path), shutil.which("smddprun", path=path) is not None,
                   shutil.which("smddpmprun", path=path) is not None)


def count_gpus(path: str | None = None) -> int:
    """GPUs as the toolkit counts them: lines of ``nvidia-smi --list-gpus`` that start with "GPU "."""
    tool = shutil.which("nvidia-smi", path=path)
    if tool is None:
        return 0
    try:
        out = subprocess.run([tool, "--list-gpus"], capture_output=True, check=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in out.decode("utf-8", "replace").split("\n") if line.startswith("GPU "))


def count_neurons(instance_type: str, path: str | None = None) -> int:
    """Neuron cores as the toolkit counts them: 64 on trn2.48xlarge, else ``neuron-ls -j``'s nc_count."""
    if "trn2.48xlarge" in instance_type:
        return 64
    tool = shutil.which("neuron-ls", path=path)
    if tool is None:
        return 0
    try:
        out = subprocess.run([tool, "-j"], capture_output=True, check=True, timeout=30).stdout
        return sum(item.get("nc_count", 0) for item in json.loads(out))
    except (OSError, subprocess.SubprocessError, ValueError, TypeError, AttributeError):
        return 0


def env_value(value: object) -> str:
    """A value as the toolkit writes it into a variable: strings as they are, "" for null, else JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("latin1")
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def decode_hyperparameters(raw: Mapping[str, str]) -> dict[str, object]:
    """``hyperparameters.json``'s strings as the toolkit reads them: JSON where a value parses."""
    out: dict[str, object] = {}
    for key, value in raw.items():
        try:
            out[key] = json.loads(value)
        except (ValueError, TypeError):
            out[key] = value
    return out


def split_hyperparameters(hps: Mapping[str, object]) -> tuple[dict[str, object], dict[str, object]]:
    """``(user, sagemaker)``: the script's own hyperparameters, and the SDK's ``sagemaker_*`` ones."""
    sagemaker = {k: v for k, v in hps.items() if k in SAGEMAKER_HYPERPARAMETERS or k.startswith(SAGEMAKER_PREFIX)}
    return {k: v for k, v in hps.items() if k not in sagemaker}, sagemaker


def _arg(value: object) -> str:
    return "" if value is None else value.decode("latin1") if isinstance(value, bytes) else str(value)


def to_cmd_args(hps: Mapping[str, object]) -> list[str]:
    """Hyperparameters as a framework container passes them to a script.

    Sorted by name; ``--name value`` (``-n value`` for a one-letter name);
    values as Python's ``str()`` of the decoded JSON (``True``, ``0.001``,
    ``[1, 2]``), a null as "" and a mapping as ``k=v,k2=v2``.
    """
    out: list[str] = []
    for key in sorted(hps):
        name = _arg(key)
        value = hps[key]
        out.append("" if not name else f"--{name}" if len(name) > 1 else f"-{name}")
        out.append(",".join(f"{k}={v}" for k, v in sorted(value.items())) if hasattr(value, "items")
                   else _arg(value))
    return out


def training_job_arn(job_name: str, region: str) -> str:
    """The ARN SageMaker gives a training job (its name lower-cased), in :data:`LOCAL_ACCOUNT`."""
    return f"arn:aws:sagemaker:{region}:{LOCAL_ACCOUNT}:training-job/{job_name.lower()}"


def training_environment(job: Job, layout: Layout, host_index: int, hosts: int, *, job_name: str,
                         base: Mapping[str, str] | None = None, machine: Machine | None = None,
                         extra_hyperparameters: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of the training script on one host.

    Args:
        job: the job definition.
        layout: this host's directories, as the script sees them (``/opt/ml``
            in a mount namespace of its own).
        host_index: this host (0-based).
        hosts: how many hosts.
        job_name: the TrainingJobName (``TRAINING_JOB_NAME``).
        base: the environment to extend (default ``os.environ``).
        machine: CPUs and GPUs (default: :meth:`Machine.probe`).
        extra_hyperparameters: written to hyperparameters.json beside the
            job's (``sagemaker_program`` for ``--entry-point``).

    Returns:
        A new dict: ``base`` plus every variable described in the module docstring.
    """
    base = os.environ if base is None else base
    machine = machine or Machine.probe(base)
    env = {k: v for k, v in base.items() if not k.startswith(JOB_OWNED_PREFIXES)}
    env["TRAINING_JOB_NAME"] = job_name
    env["TRAINING_JOB_ARN"] = training_job_arn(
        job_name, base.get("AWS_REGION") or base.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)
    env["SAGEMAKER_BASE_DIR"] = str(layout.root)
    resource = resource_config(host_index, hosts, job.resource_config.instance_type)
    raw = hyperparameters(job) | dict(extra_hyperparameters or {})
    env.update(toolkit_variables(layout, resource, input_data_config(job), decode_hyperparameters(raw),
                                 env, machine))
    return env


def toolkit_variables(layout: Layout, resource: dict, input_config: dict, hps: Mapping[str, object],
                      env: Mapping[str, str], machine: Machine) -> dict[str, str]:
    """``Environment().to_env_vars()`` for these config files, with ``env`` as the process's environment."""
    user_hps, sagemaker = split_hyperparameters(hps)
    framework_params = {k: v for k, v in sagemaker.items() if k not in SAGEMAKER_HYPERPARAMETERS}
    program = env.get("SAGEMAKER_PROGRAM")
    module_name = program if program is not None else str(sagemaker.get("sagemaker_program"))
    entry_point = program or sagemaker.get("sagemaker_program")
    group = resource.get("current_group_name", INSTANCE_GROUP)
    groups_config = resource.get("instance_groups", [])
    groups = {g["instance_group_name"]: g for g in groups_config}
    flags_on = any(framework_params.get(flag, False) for flag in DISTRIBUTION_FLAGS)
    distribution_groups = framework_params.get("sagemaker_distribution_instance_groups",
                                               [group] if flags_on else [])
    hosts = resource["hosts"]
    distribution_hosts = ([h for g in groups_config if g["instance_group_name"] in distribution_groups
                           for h in g["hosts"]] if groups_config else list(hosts))
    master = distribution_hosts[0] if distribution_hosts else hosts[0]
    instance_type = resource.get("current_instance_type", LOCAL_INSTANCE_TYPE)
    channels = {name: str(layout.channel_dir(name)) for name in input_config}
    hp_vars = {f"SM_HP_{env_name(k)}": env_value(v) for k, v in user_hps.items()}
    mp = hp_vars.get("SM_HP_MP_PARAMETERS")  # the toolkit reads it back from the script's environment
    props = {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": channels,
        "current_host": resource["current_host"],
        "current_instance_group": group,
        "current_instance_group_hosts": groups[group]["hosts"] if group in groups else [],
        "current_instance_type": instance_type,
        "distribution_hosts": distribution_hosts,
        "distribution_instance_groups": distribution_groups,
        "framework_module": env.get("SAGEMAKER_TRAINING_MODULE"),
        "hosts": hosts,
        "hyperparameters": user_hps,
        "input_config_dir": str(layout.config_dir),
        "input_data_config": input_config,
        "input_dir": str(layout.input_dir),
        "instance_groups": list(groups),
        "instance_groups_dict": groups,
        "is_hetero": len(groups) > 1,
        "is_master": resource["current_host"] == master,
        "is_modelparallel_enabled": mp and mp != "{}",
        "is_smddpmprun_installed": machine.smddpmprun,
        "is_smddprun_installed": machine.smddprun,
        "job_name": env.get("TRAINING_JOB_NAME"),
        "log_level": sagemaker.get("sagemaker_container_log_level", DEFAULT_LOG_LEVEL),
        "master_hostname": master,
        "model_dir": str(layout.model_dir),
        "module_dir": str(sagemaker.get("sagemaker_submit_directory", layout.code_dir)),
        "module_name": module_name[:-3] if module_name.endswith(".py") else module_name,
        "network_interface_name": resource.get("network_interface_name", "eth0"),
        "num_cpus": machine.cpus,
        "num_gpus": machine.gpus,
        "num_neurons": count_neurons(instance_type, env.get("PATH")),
        "output_data_dir": str(layout.output_data_dir),
        "output_dir": str(layout.output_dir),
        "output_intermediate_dir": str(layout.output_intermediate_dir),
        "resource_config": resource,
        "topology": resource.get("topology", []),
        "user_entry_point": entry_point,
    }
    p = props
    keys = {
        "hosts": p["hosts"], "network_interface_name": p["network_interface_name"], "hps": user_hps,
        "user_entry_point": entry_point, "framework_params": framework_params, "resource_config": resource,
        "input_data_config": input_config, "output_data_dir": p["output_data_dir"], "channels": sorted(channels),
        "current_host": p["current_host"], "current_instance_type": instance_type, "current_instance_group": group,
        "current_instance_group_hosts": p["current_instance_group_hosts"], "instance_groups": p["instance_groups"],
        "instance_groups_dict": groups, "distribution_instance_groups": distribution_groups,
        "is_hetero": p["is_hetero"], "module_name": p["module_name"], "log_level": p["log_level"],
        "framework_module": p["framework_module"], "input_dir": p["input_dir"],
        "input_config_dir": p["input_config_dir"], "output_dir": p["output_dir"], "num_cpus": machine.cpus,
        "num_gpus": machine.gpus, "num_neurons": p["num_neurons"], "model_dir": p["model_dir"],
        "module_dir": p["module_dir"], "training_env": props, "user_args": to_cmd_args(user_hps),
        "output_intermediate_dir": p["output_intermediate_dir"],
    }
    if p["topology"]:
        keys["topology"] = p["topology"]
    out = {f"SM_{k.upper()}": env_value(v) for k, v in keys.items()}
    out.update({f"SM_CHANNEL_{env_name(name)}": path for name, path in channels.items()})
    out.update(hp_vars)
    return out
