"""The architecture holds: import-linter's contracts (pyproject.toml) pass, a broken copy fails, the picture is fresh."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = ("import sys; from importlinter.cli import lint_imports; "
        "sys.exit(lint_imports(config_filename='pyproject.toml', no_cache=True, no_logo=True))")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, "-c", LINT], cwd=root, env=env, capture_output=True, text=True,
                          timeout=120)


def test_the_contracts_hold():
    out = lint(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Imports point down the layers KEPT" in out.stdout
    assert "The three input modes never import each other KEPT" in out.stdout


def test_a_copy_with_an_upward_import_and_a_mode_importing_another_fails(tmp_path):
    shutil.copytree(ROOT / "channels", tmp_path / "channels", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / "channels" / "units.py", "a") as f:
        f.write("\nimport channels.cli  # noqa: E402,F401  (the ground floor importing the top)\n")
    with open(tmp_path / "channels" / "modes" / "file" / "keys.py", "a") as f:
        f.write("\nimport channels.modes.pipe  # noqa: E402,F401  (one mode importing another)\n")
    out = lint(tmp_path)
    assert out.returncode != 0, out.stdout
    assert "Imports point down the layers BROKEN" in out.stdout
    assert "channels.units -> channels.cli" in out.stdout
    assert "The three input modes never import each other BROKEN" in out.stdout
    assert "channels.modes.file.keys -> channels.modes.pipe" in out.stdout


def test_the_picture_in_docs_is_generated_from_the_code():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "layers.py"), "--check"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert (ROOT / "docs" / "layers.png").stat().st_size > 10_000
