"""The notebooks run headless from a clean clone and write their PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("matplotlib")
pytest.importorskip("ipykernel")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = {
    "shard_balance.ipynb": ["shard_balance.png", "shard_balance_planned.png"],
    "throughput.ipynb": ["throughput.png", "throughput_vs_best_peer.png"],
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_and_writes_pngs(name, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.delenv("CHANNELS_BENCH_JSON", raising=False)
    for png in EXPECTED[name]:
        (NOTEBOOKS / png).unlink(missing_ok=True)
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    for png in EXPECTED[name]:
        path = NOTEBOOKS / png
        assert path.is_file(), f"{name} did not write {png}"
        data = path.read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"
