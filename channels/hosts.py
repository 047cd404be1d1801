"""Which host this process is, among how many: read by the surfaces only.

Lower layers take host identity as plain values (index, count); this module
finds them, in this order:

1. explicit values (``--hosts N --host-index I``);
2. ``resourceconfig.json``: the file named by ``SM_RESOURCE_CONFIG`` (a path,
   or the JSON text itself, as the SageMaker training toolkit sets it), else
   ``/opt/ml/input/config/resourceconfig.json``; ``current_host`` and ``hosts``;
3. ``SM_HOSTS`` (a JSON list) with ``SM_CURRENT_HOST``;
4. otherwise a single host, ``algo-1``.

A host's index is its position in the ``hosts`` list as written there (the
platform writes it sorted, and every host reads the same list, so every host
computes the same assignment).

:func:`process_identity` adds the processes on a host, for scripts that run
several (torchrun, or ``torch.distributed.launch``): it reads torchrun's
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` (and
``GROUP_RANK``, the node's rank) beside the host identity above, so that one
script shards the same way under SageMaker, torchrun and ``channels run``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from channels.errors import ShardingError
from channels.sharding import check_host, host_name

RESOURCE_CONFIG_PATH = "/opt/ml/input/config/resourceconfig.json"


def host_identity(hosts: int | None = None, host_index: int | None = None, *,
                  environ: Mapping[str, str] | None = None) -> tuple[int, int, str]:
    """``(index, count, name)`` of this host.

    Args:
        hosts: the host count, when given explicitly (``--hosts``).
        host_index: this host's 0-based index, when given (``--host-index``).
        environ: the environment to read (default ``os.environ``).

    Raises:
        ShardingError: only one of ``hosts``/``host_index`` was given (and
            hosts > 1), an index out of range, or a resource config that does
            not name this host among its hosts.
    """
    env = os.environ if environ is None else environ
    if hosts is not None or host_index is not None:
        if hosts is None:
            raise ShardingError(f"--host-index {host_index} needs --hosts (the host count)",
                                host=host_index)
        if host_index is None:
            if hosts != 1:
                raise ShardingError(f"--hosts {hosts} needs --host-index (0..{hosts - 1}) "
                                    "to say which host this is", hosts=hosts)
            host_index = 0
        check_host(host_index, hosts)
        return host_index, hosts, host_name(host_index)
    found = _from_resource_config(env)
    if found is None:
        found = _from_sm_hosts(env)
    return found if found is not None else (0, 1, host_name(0))


def _from_resource_config(env: Mapping[str, str]) -> tuple[int, int, str] | None:
    value = env.get("SM_RESOURCE_CONFIG", "").strip()
    where = "SM_RESOURCE_CONFIG"
    if value.startswith("{"):
        text = value
    else:
        path = Path(value or RESOURCE_CONFIG_PATH)
        where = str(path)
        try:
            text = path.read_text()
        except FileNotFoundError:
            if value:
                raise ShardingError(f"SM_RESOURCE_CONFIG names {path}, which does not exist: fix the "
                                    "path or unset it", path=str(path)) from None
            return None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ShardingError(f"{where} is not JSON ({exc.msg} at line {exc.lineno}): expected "
                            '{"current_host": "algo-1", "hosts": ["algo-1", ...]}', source=where) from exc
    if not isinstance(doc, dict):
        raise ShardingError(f"{where} is not a JSON object", source=where)
    return _locate(doc.get("current_host"), doc.get("hosts"), where)


def _from_sm_hosts(env: Mapping[str, str]) -> tuple[int, int, str] | None:
    raw = env.get("SM_HOSTS")
    current = env.get("SM_CURRENT_HOST")
    if not raw and not current:
        return None
    if not raw or not current:
        missing = "SM_HOSTS" if not raw else "SM_CURRENT_HOST"
        raise ShardingError(f"{missing} is not set while the other is: set both (SM_HOSTS a JSON list "
                            "of host names, SM_CURRENT_HOST one of them), or pass --hosts/--host-index")
    try:
        hosts = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ShardingError(f"SM_HOSTS is not a JSON list ({exc.msg}): got {raw[:200]!r}") from exc
    return _locate(current, hosts, "SM_HOSTS/SM_CURRENT_HOST")


def _locate(current: object, hosts: object, where: str) -> tuple[int, int, str]:
    if not isinstance(hosts, list) or not hosts or not all(isinstance(h, str) for h in hosts):
        raise ShardingError(f"{where}: hosts must be a non-empty list of host names, got {hosts!r}",
                            source=where)
    if not isinstance(current, str) or current not in hosts:
        raise ShardingError(f"{where}: current host {current!r} is not among hosts {hosts[:16]}",
                            source=where)
    if len(set(hosts)) != len(hosts):
        raise ShardingError(f"{where}: hosts lists a name twice: {hosts[:16]}", source=where)
    return hosts.index(current), len(hosts), current


# ----------------------------------------------------------- processes

TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK")


@dataclass(frozen=True)
class Identity:
    """Where this process stands: its host among the hosts, and its rank among all processes.

    Invariants: ``rank == host_index * local_world_size + local_rank`` unless
    a multi-node torchrun numbered its nodes in another order (then ``rank``
    is torchrun's); ``world_size == hosts * local_world_size``.

    Attributes:
        host_index: this host's 0-based index (its channel share).
        hosts: how many hosts.
        host: this host's name (``algo-1``...).
        local_rank: this process among the processes of its host.
        local_world_size: how many processes on each host.
        rank: this process among all processes of the job.
        world_size: how many processes in the job.
        source: where the host identity came from: "explicit", "resourceconfig",
            "SM_HOSTS", "torchrun" or "default".
    """

    host_index: int
    hosts: int
    host: str
    local_rank: int = 0
    local_world_size: int = 1
    rank: int = 0
    world_size: int = 1
    source: str = "default"


def process_identity(hosts: int | None = None, host_index: int | None = None, *,
                     environ: Mapping[str, str] | None = None) -> Identity:
    """This process's :class:`Identity`, from flags, SageMaker's files and variables, and torchrun's.

    The host comes from :func:`host_identity` (explicit values, then
    resourceconfig.json, then ``SM_HOSTS``/``SM_CURRENT_HOST``); where none of
    those is set, from torchrun: ``GROUP_RANK`` (else ``RANK // LOCAL_WORLD_SIZE``)
    of ``WORLD_SIZE // LOCAL_WORLD_SIZE`` nodes. The processes on the host come
    from torchrun's variables, or are just this one. A torchrun started on
    each host on its own (``--nnodes 1``, so ``WORLD_SIZE == LOCAL_WORLD_SIZE``)
    under several hosts counts its ranks within the host; the job's rank is
    then ``host_index * LOCAL_WORLD_SIZE + LOCAL_RANK``.

    Args:
        hosts: the host count, when given explicitly.
        host_index: this host's 0-based index, when given.
        environ: the environment to read (default ``os.environ``).

    Raises:
        ShardingError: a torchrun variable that is not an integer or out of
            range, or a torchrun world that does not fit the host count (the
            message gives both and the fix).
    """
    env = os.environ if environ is None else environ
    torch_vars = {k: _int_var(env, k) for k in TORCHRUN_VARIABLES if env.get(k, "").strip()}
    explicit = hosts is not None or host_index is not None
    known_host = explicit or _from_resource_config(env) is not None or bool(env.get("SM_HOSTS"))
    if "WORLD_SIZE" not in torch_vars:
        index, count, name = host_identity(hosts, host_index, environ=env)
        source = "explicit" if explicit else _host_source(env)
        return Identity(index, count, name, 0, 1, index, count, source)
    world = torch_vars["WORLD_SIZE"]
    rank = torch_vars.get("RANK", 0)
    local_rank = torch_vars.get("LOCAL_RANK", rank if not known_host else 0)
    if known_host:
        index, count, name = host_identity(hosts, host_index, environ=env)
        source = "explicit" if explicit else _host_source(env)
        local_world = torch_vars.get("LOCAL_WORLD_SIZE", world if world % count else world // count)
    else:
        local_world = torch_vars.get("LOCAL_WORLD_SIZE", world)
        count = max(1, world // local_world)
        index = torch_vars.get("GROUP_RANK", rank // local_world)
        check_host(index, count)
        name, source = host_name(index), "torchrun"
    if not 0 <= rank < world or not 0 <= local_rank < local_world:
        raise ShardingError(f"torchrun variables out of range: RANK={rank} of WORLD_SIZE={world}, "
                            f"LOCAL_RANK={local_rank} of LOCAL_WORLD_SIZE={local_world}", rank=rank)
    if world == count * local_world:  # one torchrun across every host
        return Identity(index, count, name, local_rank, local_world, rank, world, source)
    if world == local_world:  # a torchrun per host, each numbering its own ranks
        return Identity(index, count, name, local_rank, local_world, index * local_world + local_rank,
                        count * local_world, source)
    raise ShardingError(f"torchrun's WORLD_SIZE={world} with LOCAL_WORLD_SIZE={local_world} does not fit "
                        f"{count} host(s): expected WORLD_SIZE {count * local_world} (one torchrun across "
                        f"the hosts) or {local_world} (one per host); check --nnodes and --nproc-per-node",
                        world_size=world, hosts=count)


def _host_source(env: Mapping[str, str]) -> str:
    if _from_resource_config(env) is not None:
        return "resourceconfig"
    return "SM_HOSTS" if env.get("SM_HOSTS") else "default"


def _int_var(env: Mapping[str, str], name: str) -> int:
    raw = env[name].strip()
    try:
        value = int(raw)
    except ValueError:
        raise ShardingError(f"{name}={raw[:50]!r} is not an integer; torchrun sets it to one: unset it or "
                            "fix it", variable=name) from None
    if value < (1 if name.endswith("SIZE") else 0):
        raise ShardingError(f"{name}={value} is out of range (sizes are >= 1, ranks >= 0)", variable=name)
    return value
