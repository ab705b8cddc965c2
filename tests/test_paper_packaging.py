"""The paper extra installs what the recipe needs and no dev tools; the library imports no fastcore."""
import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _reqs(key):
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    return cfg["DEFAULT"].get(key, "").split()


def test_paper_extra_has_no_dev_tools():
    paper = _reqs("paper_requirements")
    assert paper and not {re.split(r"[<>=]", r)[0] for r in paper} & {"nbdev", "fastcore", "jupyterlab", "execnb", "ghapi"}
    assert "paper" in (ROOT / "setup.py").read_text()


def test_library_does_not_import_fastcore():
    offenders = [p.name for p in (ROOT / "elf_s2t_nb").glob("*.py")
                 if p.name != "_modidx.py" and re.search(r"^\s*(from|import) fastcore", p.read_text(), re.M)]
    assert offenders == []
