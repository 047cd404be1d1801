"""A host's script in a mount namespace of its own: its root on /opt/ml, algo-1..N in /etc/hosts.

``channels run --mount-namespace`` starts each host's command through this
file, which sets the namespace up and then ``exec``s the command::

    python -I -S namespace.py --root ROOT --hosts-file FILE --hostname algo-2 -- COMMAND ...
    python -I -S namespace.py --root ROOT --hosts-file FILE --hostname algo-1 --probe

In the new namespace (mount and UTS; the rest of the machine is shared):

1. every mount is made private, so nothing done here reaches the machine;
2. ROOT (with the channel mounts under it) is bind-mounted on ``/opt/ml``.
   Where ``/opt/ml`` does not exist, ``/opt`` is covered by a tmpfs that
   holds ``ml`` beside bind mounts of everything ``/opt`` had: nothing is
   created on the machine's own disk;
3. FILE (the machine's hosts plus ``127.0.0.1 algo-1 ... algo-N``) is
   bind-mounted on ``/etc/hosts``, so the hosts resolve each other;
4. the host name becomes ``algo-K``.

As root this takes ``unshare(CLONE_NEWNS | CLONE_NEWUTS)``; otherwise it
tries a user namespace too (where the kernel allows unprivileged ones), with
the caller's own uid and gid mapped, so the script keeps its identity.
``--probe`` does all of it and exits 0 instead of running a command; on
failure it prints why and exits 1.

Run as a file with ``-I -S`` (Python 3.11 has no ``os.unshare``; ``ctypes``
calls libc), it imports nothing outside the standard library, so it adds a
few tens of milliseconds to the script's start.
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWUSER = 0x10000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
SAGEMAKER_ROOT = "/opt/ml"
HOSTS_FILE = "/etc/hosts"
#: Exit status when the namespace could not be made (as a shell's "cannot execute").
EXIT_NO_NAMESPACE = 126

_libc = ctypes.CDLL(None, use_errno=True)


class NamespaceError(OSError):
    """A step of the set-up failed; the message says which and why."""


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise NamespaceError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(v: str | None) -> bytes | None:
        return None if v is None else os.fsencode(v)

    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)),
           f"mount {source or fstype} on {target}")


def unshare() -> str:
    """Enter new mount and UTS namespaces; returns "root" or "user namespace" (how it was done)."""
    if _libc.unshare(CLONE_NEWNS | CLONE_NEWUTS) == 0:
        return "root"
    first = ctypes.get_errno()
    if first != errno.EPERM or os.geteuid() == 0:
        raise NamespaceError(first, f"unshare(CLONE_NEWNS | CLONE_NEWUTS): {os.strerror(first)}")
    uid, gid = os.geteuid(), os.getegid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWUTS) != 0:
        code = ctypes.get_errno()
        raise NamespaceError(code, "unshare: not root (needs CAP_SYS_ADMIN), and no unprivileged user "
                             f"namespace either ({os.strerror(code)})")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)
    return "user namespace"


def _cover_opt() -> None:
    """Give /opt an ``ml`` folder without touching the disk: a tmpfs over it, its old entries bound back."""
    if not os.path.isdir("/opt"):
        raise NamespaceError(errno.ENOENT, "/opt does not exist, so /opt/ml cannot be made")
    old = os.open("/opt", os.O_PATH | os.O_DIRECTORY)
    entries = os.listdir("/opt")
    _mount("tmpfs", "/opt", "tmpfs", 0, "mode=755")
    for name in entries:
        source = f"/proc/self/fd/{old}/{name}"
        target = f"/opt/{name}"
        mode = os.lstat(source).st_mode
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(source), target)
            continue
        if stat.S_ISDIR(mode):
            os.mkdir(target)
        else:
            open(target, "w").close()
        _mount(source, target, None, MS_BIND | MS_REC)
    os.mkdir(SAGEMAKER_ROOT)
    os.close(old)


def enter(root: str, hosts_file: str, hostname: str) -> str:
    """Set the namespace up (steps 1-4 of the module docstring); returns how it was made."""
    how = unshare()
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    if not os.path.lexists(SAGEMAKER_ROOT):
        _cover_opt()
    elif not os.path.isdir(SAGEMAKER_ROOT):
        raise NamespaceError(errno.ENOTDIR, f"{SAGEMAKER_ROOT} exists and is not a folder")
    _mount(root, SAGEMAKER_ROOT, None, MS_BIND | MS_REC)
    _mount(hosts_file, HOSTS_FILE, None, MS_BIND)
    name = hostname.encode()
    _check(_libc.sethostname(name, len(name)), f"sethostname {hostname}")
    return how


# ------------------------------------------------------------ the runner's side


def hosts_text(hosts: int, base: str = HOSTS_FILE) -> str:
    """The private /etc/hosts: the machine's own lines, then ``127.0.0.1 algo-1 ... algo-N``."""
    try:
        with open(base, encoding="utf-8", errors="replace") as f:
            own = f.read()
    except OSError:
        own = "127.0.0.1 localhost\n"
    names = " ".join(f"algo-{i + 1}" for i in range(hosts))
    return own.rstrip("\n") + f"\n# channels run: the job's hosts\n127.0.0.1 {names}\n"


def wrap(command: list[str], root: str, hosts_file: str, hostname: str) -> list[str]:
    """``command`` started through this file, in the host's own namespace."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), "--root", root, "--hosts-file", hosts_file,
            "--hostname", hostname, "--", *command]


def probe(hosts_file: str, scratch: str) -> str | None:
    """Try the whole set-up once (``scratch`` as the root); None when it works, else why not."""
    import subprocess

    argv = wrap([], scratch, hosts_file, "algo-1")[:-1] + ["--probe"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return done.stderr.strip().rpartition("no mount namespace: ")[2] or f"exit status {done.returncode}"


def names_resolve(hosts: int, timeout: float = 1.0) -> bool:
    """Whether this machine already resolves every ``algo-K`` (its own /etc/hosts, or DNS)."""
    import socket
    import threading

    found: list[bool] = []

    def look() -> None:
        try:
            for i in range(hosts):
                socket.gethostbyname(f"algo-{i + 1}")
        except OSError:
            found.append(False)
        else:
            found.append(True)

    t = threading.Thread(target=look, daemon=True)
    t.start()
    t.join(timeout)
    return bool(found and found[0])


def unavailable_note(hosts: int, why: str) -> str:
    """What a run without the namespace it asked for cannot do, and what it does instead."""
    names = " ".join(f"algo-{i + 1}" for i in range(hosts))
    note = (f"--mount-namespace: no mount namespace can be made here ({why}); it needs root, or a kernel "
            "that lets users make user namespaces. Running without: /opt/ml is not this job's, so a script "
            "that hard-codes /opt/ml will not find its files; SAGEMAKER_BASE_DIR and every SM_* path point "
            "at each host's root instead, which the training toolkit and SM_*-reading scripts follow")
    if hosts == 1:
        note += " (--root /opt/ml gives one host SageMaker's own paths)"
    if names_resolve(hosts):
        return note + f"; {names} already resolve on this machine"
    return note + (f"; {names} do not resolve, so a script that looks them up waits (the training toolkit's "
                   f"`train` does, up to 15 minutes): add '127.0.0.1 {names}' to /etc/hosts")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="namespace.py", description=__doc__.split("\n", 1)[0])
    p.add_argument("--root", required=True, help="the host's root, bound on /opt/ml")
    p.add_argument("--hosts-file", required=True, help="bound on /etc/hosts")
    p.add_argument("--hostname", required=True, help="the host's name (algo-K)")
    p.add_argument("--probe", action="store_true", help="set up, then exit 0 instead of running a command")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    args = p.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    try:
        how = enter(args.root, args.hosts_file, args.hostname)
    except OSError as exc:
        print(f"channels run: {args.hostname}: no mount namespace: {exc}", file=sys.stderr)
        return EXIT_NO_NAMESPACE
    if args.probe:
        print(how)
        return 0
    if not command:
        print("namespace.py: no command after --", file=sys.stderr)
        return 2
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"channels run: {args.hostname}: cannot run {command[0]}: {exc}", file=sys.stderr)
        return 127
    return 0  # pragma: no cover - execvp does not return


if __name__ == "__main__":
    sys.exit(main())
