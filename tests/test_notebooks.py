"""Run every notebook in `nbs/` as a test, exactly as `nbdev_test` does (cells flagged in `tst_flags` skipped)."""
from pathlib import Path
import pytest
from nbdev.config import get_config
from nbdev.test import test_nb as run_notebook

NBS = Path(__file__).resolve().parents[1] / "nbs"
NOTEBOOKS = sorted(p for p in NBS.glob("*.ipynb") if not p.name.startswith("_"))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook(nb, request):
    cfg = get_config(path=NBS.parent)
    ok, secs = run_notebook(nb, skip_flags=cfg.tst_flags.split(), force_flags=request.config.getoption("--flags").split(),
                       basepath=cfg.config_path)
    assert ok, f"{nb.name} failed (see the cell traceback above)"
