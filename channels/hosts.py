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
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
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
