"""What ``channels`` loads at start: only the subcommand asked for, and for a download of an
``s3://`` prefix none of the heavy libraries it does not use.

Checked in a fresh interpreter (``sys.modules`` after a real download), not by timing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from channels.cli.main import COMMANDS

#: Packages a one-host download of an s3:// prefix must not import: other subcommands', the fsspec
#: listing's (s3fs brings aiobotocore, aiohttp and an event loop), a bar nobody sees, numpy for a
#: plan one host does not need, the job's parser, botocore's session and client (the environment's
#: credentials need neither), urllib3 (channels.http sends through http.client), the cache's index
#: (sqlite3) for a transport without a cache, and statistics for a median of a few numbers.
NOT_ON_THE_DOWNLOAD_PATH = ("s3fs", "aiobotocore", "aiohttp", "fsspec", "pyarrow", "torch", "tqdm", "mfusepy",
                            "numpy", "boto3", "channels.bench", "channels.modes.pipe", "channels.modes.fastfile",
                            "channels.run", "channels.cli.bench", "channels.cli.mount", "channels.spec",
                            "botocore.session", "botocore.client", "urllib3", "channels.cache.objects",
                            "sqlite3", "statistics")

PROBE = """
import json, sys
from channels.cli.main import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "modules": sorted(sys.modules)}))
"""


def test_the_parser_holds_the_subcommand_named_or_all():
    from channels.cli.main import build_parser

    def choices(parser):
        return list(next(a for a in parser._subparsers._group_actions).choices)

    assert choices(build_parser("download")) == ["download"]
    assert len(choices(build_parser())) == len(COMMANDS)


def test_download_of_a_prefix_loads_none_of_the_heavy_libraries(s3, s3_client, bucket, tmp_path):
    for i in range(3):
        s3_client.put_object(Bucket=bucket, Key=f"data/{i}.bin", Body=bytes([i]) * (1000 + i))
    env = {k: v for k, v in os.environ.items() if k not in ("SM_HOSTS", "SM_CURRENT_HOST", "SM_RESOURCE_CONFIG")}
    done = subprocess.run([sys.executable, "-c", PROBE, "download", f"s3://{bucket}/data/", str(tmp_path / "d"),
                           "--endpoint-url", s3.endpoint_url, "-q"],
                          capture_output=True, text=True, env=env, timeout=120, check=True)
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0
    assert sorted(p.name for p in (tmp_path / "d").iterdir() if not p.name.startswith(".")) == \
        ["0.bin", "1.bin", "2.bin"]
    loaded = [m for m in out["modules"] if any(m == p or m.startswith(p + ".") for p in NOT_ON_THE_DOWNLOAD_PATH)]
    assert loaded == []


def test_help_still_lists_every_subcommand():
    done = subprocess.run([sys.executable, "-m", "channels", "--help"], capture_output=True, text=True,
                          timeout=60, check=True)
    for name in COMMANDS:
        assert name.replace("_", "-") in done.stdout


def test_only_the_program_freezes_its_objects_before_exit():
    # As the program (argv from sys.argv) main() spares the interpreter's last collection;
    # called in-process with arguments it leaves the caller's collector alone.
    import gc
    from pathlib import Path

    from channels.cli.main import main

    job = str(Path(__file__).parent / "data" / "jobs" / "definition.json")
    before = gc.get_freeze_count()
    assert main(["validate", job]) == 0
    assert gc.get_freeze_count() == before
    probe = ("import gc, sys\nfrom channels.cli.main import main\nsys.argv = ['channels', 'validate', sys.argv[1]]\n"
             "rc = main()\nprint(rc, gc.get_freeze_count())")
    out = subprocess.run([sys.executable, "-c", probe, job], capture_output=True, text=True, timeout=60, check=True)
    rc, frozen = out.stdout.split()[-2:]
    assert rc == "0" and int(frozen) > 1000


def test_a_download_as_the_program_ends_at_once_with_its_output_flushed(s3, s3_client, bucket, tmp_path):
    # exit_at_once: the summary line (buffered stdout, into a pipe) arrives, the status is the
    # command's, and the interpreter's teardown (atexit included) is skipped; other commands tear down.
    s3_client.put_object(Bucket=bucket, Key="data/a.bin", Body=b"x" * 1000)
    probe = ("import atexit, sys\nfrom channels.cli.main import main\n"
             "atexit.register(lambda: print('TEARDOWN', flush=True))\n"
             "sys.argv = ['channels', *sys.argv[1:]]\nsys.exit(main())")
    env = {k: v for k, v in os.environ.items() if k not in ("SM_HOSTS", "SM_CURRENT_HOST", "SM_RESOURCE_CONFIG")}
    done = subprocess.run([sys.executable, "-c", probe, "download", f"s3://{bucket}/data/", str(tmp_path / "d"),
                           "--endpoint-url", s3.endpoint_url], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1].startswith("downloaded 1 object,"), done.stdout
    assert "TEARDOWN" not in done.stdout
    failed = subprocess.run([sys.executable, "-c", probe, "download", f"s3://{bucket}/missing/", str(tmp_path / "e"),
                             "--endpoint-url", s3.endpoint_url], capture_output=True, text=True, env=env, timeout=120,
                            check=False)
    assert failed.returncode == 2 and "channels download: error:" in failed.stderr
    assert "TEARDOWN" not in failed.stdout
    job = str(Path(__file__).parent / "data" / "jobs" / "definition.json")
    other = subprocess.run([sys.executable, "-c", probe, "validate", job], capture_output=True, text=True, timeout=60,
                           check=False)
    assert other.returncode == 0 and "TEARDOWN" in other.stdout
