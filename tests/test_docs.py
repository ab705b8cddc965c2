"""What a learner reads must stand on its own: the notebooks, the modules exported from them and the README."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The project's internal design documents: a learner who clones the repository does not have them.
DESIGN_DOCS = re.compile(r"ELF_REFERENCE|ARCHITECTURE\.md|OFFLINE_ASSETS|HOUSE_STYLE|shared/design")


def _learner_files():
    yield from sorted((ROOT / "nbs").rglob("*.ipynb"))
    yield from sorted((ROOT / "elf_s2t_nb").glob("*.py"))
    yield ROOT / "README.md"


def test_no_design_document_is_cited():
    files = list(_learner_files())
    assert any(f.name == "09_flow.ipynb" for f in files)  # the scan does see the notebooks
    hits = [f"{f.relative_to(ROOT)}:{i}: {line.strip()[:100]}"
            for f in files for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1)
            if DESIGN_DOCS.search(line)]
    assert hits == [], "cite the paper or the official ELF code instead of a design document:\n" + "\n".join(hits)


def test_the_pattern_catches_a_citation():
    assert DESIGN_DOCS.search("the objective of ELF (`ELF_REFERENCE.md` §3)")
    assert DESIGN_DOCS.search("**Audio forcing** (ARCHITECTURE.md) moves")
    assert not DESIGN_DOCS.search("the objective of ELF (Hu et al., arXiv 2605.10938)")


def _index_map():
    import json
    cells = json.loads((ROOT / "nbs" / "index.ipynb").read_text(encoding="utf-8"))["cells"]
    text = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "markdown")
    return re.findall(r"^\| \[([0-9][0-9a-z_]*)\]\(\1\.ipynb\) \|", text, re.M)


def _readme_map():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Notebooks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `([0-9][0-9a-z_]*)` \|", section, re.M)


def test_index_and_readme_map_the_same_notebooks_in_the_same_order():
    notebooks = sorted(p.stem for p in (ROOT / "nbs").glob("[0-9]*.ipynb"))
    index = _index_map()
    assert sorted(index) == notebooks  # every notebook once, nothing that does not exist
    assert _readme_map() == index


def test_nbdev_leaves_the_hand_written_readme_alone(monkeypatch):
    from nbdev.config import get_config
    from nbdev.quarto import nbdev_readme
    monkeypatch.chdir(ROOT)
    cfg = get_config()
    assert not (cfg.nbs_path / cfg.readme_nb).exists()  # so nbdev has no notebook to render README.md from
    readme = ROOT / "README.md"
    before = readme.read_bytes()
    nbdev_readme.__wrapped__(chk_time=True)  # what nbdev_prepare and nbdev_docs call
    assert readme.read_bytes() == before


def _truth_checks(source: str):
    "`test_eq(cond, True)`-style checks in a cell: a condition compared with a bool instead of two values compared."
    import ast
    lines = [("#" + line[1:]) if line.lstrip().startswith(("%", "!")) else line for line in source.split("\n")]
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    found = []
    for n in ast.walk(tree):
        if isinstance(n, ast.Call) and getattr(n.func, "id", None) in ("test_eq", "test_ne") and len(n.args) == 2:
            bools = [a for a in n.args if isinstance(a, ast.Constant) and isinstance(a.value, bool)]
            other = [a for a in n.args if a not in bools]
            # a flag read off an object (`loader.pin_memory`, `index["complete"]`) is a value, so it may be compared
            if bools and other and not isinstance(other[0], (ast.Name, ast.Attribute, ast.Subscript)):
                found.append(ast.unparse(n))
    return found


def test_notebook_checks_compare_values_not_truth():
    import json
    hits = []
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for cell in json.loads(nb.read_text(encoding="utf-8"))["cells"]:
            if cell["cell_type"] == "code":
                hits += [f"{nb.name}: {h}" for h in _truth_checks("".join(cell["source"]))]
    assert hits == [], "compare the values (test_eq(x, 3), test(a, b, lt)), not a condition with True:\n" + "\n".join(hits)


def test_truth_checks_are_found():
    assert _truth_checks("test_eq(a < b, True); test_ne(all(x), False)\ntest_eq(n, 3)") == [
        "test_eq(a < b, True)", "test_ne(all(x), False)"]
    assert _truth_checks("%time f()\ntest_eq(loader.pin_memory, False); test_eq(d['complete'], True)") == []
