"""The library is layered: each module imports only modules of the layers before it (so the import graph is
acyclic), always at the top of the module, never inside a function (lazy imports are for optional third-party
packages only: huggingface_hub, datasets, pandas, matplotlib, ipywidgets, ...)."""
import ast
import json
import re
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "elf_s2t_nb"
NBS = PKG.parent / "nbs"

# Every module of the package, in an order each may import only from the modules listed before it: the order of
# the notebooks (nbs/NN_MODULE.ipynb), which test_notebook_order below checks.
LAYERS = [
    "core",                      # errors, config, device, atomic I/O, timing, precision policy, progress
    "audio",                     # building blocks
    "whisper_weights", "whisper_encoder",
    "projector",
    "latents",                   # text encoder and the decode-head vocabularies
    "command_corpus",
    "data",                      # corpora, datasets, length bucketing, loaders
    "paper_data",                # the paper's hub datasets (LibriSpeech, CoVoST 2)
    "flow",
    "model",                     # ELF, ElfS2T, build_model, official checkpoints
    "sampling",
    "run_state",
    "train",
    "evaluate",
    "pipeline",                  # stages, run folders, transcription
    "tiny",
    "analysis", "explorer",
    "bench", "ar_baseline", "models",
    "demo",
    "shards", "gpu", "gpubench",  # the paper-scale GPU branch
    "cli",
]


def modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PKG.glob("*.py")) if not p.stem.startswith("_")}


def project_targets(node: ast.AST) -> list[str]:
    "The package modules an import statement names ('' for the package itself)."
    if isinstance(node, ast.ImportFrom):
        if node.level:
            return [node.module.split(".")[0]] if node.module else [a.name for a in node.names]
        names = [node.module or ""]
    elif isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        return []
    out = []
    for n in names:
        if n == "elf_s2t_nb":
            out += [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else [""]
        elif n.startswith("elf_s2t_nb."):
            out.append(n.split(".")[1])
    return out


def function_imports(tree: ast.Module) -> list[tuple[int, str]]:
    "(line, module) of every package import inside a function or method."
    out = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for node in ast.walk(fn):
                out += [(node.lineno, t) for t in project_targets(node)]
    return sorted(set(out))


def top_imports(tree: ast.Module) -> set[str]:
    "Package modules imported outside functions (module level, classes, `if` blocks)."
    inside = {id(n) for fn in ast.walk(tree) if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
              for n in ast.walk(fn)}
    return {t for n in ast.walk(tree) if id(n) not in inside for t in project_targets(n) if t}


def test_project_targets():
    t = lambda s: project_targets(ast.parse(s).body[0])
    assert t("from .core import Config") == ["core"]
    assert t("from elf_s2t_nb.data import SOURCES") == ["data"]
    assert t("import elf_s2t_nb.pipeline as p") == ["pipeline"]
    assert t("from elf_s2t_nb import demo") == ["demo"]
    assert t("from . import sampling") == ["sampling"]
    assert t("import torch") == [] and t("from datasets import load_dataset") == []
    src = "def f():\n    from elf_s2t_nb.pipeline import load_run\n    import math\n"
    assert function_imports(ast.parse(src)) == [(2, "pipeline")]


def test_every_module_has_a_layer():
    assert sorted(modules()) == sorted(LAYERS), "add the new module to LAYERS (or remove a stale name)"
    assert len(set(LAYERS)) == len(LAYERS)


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_package_import_inside_a_function(name):
    found = function_imports(modules()[name])
    assert not found, f"{name}.py imports package modules inside functions (line, module): {found}"


@pytest.mark.parametrize("name", sorted(modules()))
def test_imports_only_earlier_layers(name):
    rank = {m: i for i, m in enumerate(LAYERS)}
    tree = modules()[name]
    imported = top_imports(tree) | {m for _, m in function_imports(tree)}
    later = sorted(t for t in imported if t in rank and rank[t] >= rank[name])
    assert not later, f"{name}.py imports {later}, which come at or after it in LAYERS"


def test_import_graph_is_acyclic():
    graph = {m: top_imports(t) | {x for _, x in function_imports(t)} for m, t in modules().items()}
    state = {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(path + [m])
        state[m] = "open"
        for d in sorted(graph.get(m, ())):
            if d in graph:
                visit(d, path + [m])
        state[m] = "done"

    for m in sorted(graph):
        visit(m, [])


def test_one_module_defines_each_public_name():
    "A public name means one thing: defined (def, class or assignment) at the top of one module only."
    where = {}
    for m, tree in modules().items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [e.id for t in node.targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])
                         if isinstance(e, ast.Name)]
            else:
                names = []
            for n in names:
                if not n.startswith("_"):
                    where.setdefault(n, set()).add(m)
    twice = {n: sorted(ms) for n, ms in where.items() if len(ms) > 1}
    assert not twice, f"defined in several modules (rename one, or import it from the other): {twice}"


# Notebooks: one reading order. nbs/NN_MODULE.ipynb exports MODULE (the teaching notebooks without a module keep a
# descriptive name), and a notebook imports, in any code or test cell, only modules of the notebooks before it.
# The exceptions below are test cells that need a later notebook's helper and cannot move without restructuring
# modules; each says why. A stale entry fails.
FORWARD_IMPORTS = {
    # The worked examples (test cells) evaluate the small trained model of 17_tiny (`tiny_demo`, `from_run`), and
    # tiny loads runs through pipeline, which scores with evaluate: the notebook teaches evaluate's functions
    # first and uses them on a model from a later notebook.
    ("15_evaluate", "tiny"): "evaluated on the tiny demo model",
    # The evaluation, error-analysis and explorer notebooks demonstrate their functions on the trained models
    # shipped with the package (22_models loads them, through pipeline): a working model in seconds.
    ("15_evaluate", "models"): "evaluated on the shipped models",
    ("18_analysis", "models"): "analysed on the shipped models",
    ("19_explorer", "models"): "explored on the shipped ASR model",
}


def notebooks() -> list[Path]:
    return sorted(p for p in NBS.glob("*.ipynb") if re.match(r"\d\d_", p.name))


def notebook_cells(nb: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]


def notebook_module(nb: Path) -> str | None:
    found = [m.group(1) for s in notebook_cells(nb) for m in re.finditer(r"^#\|\s*default_exp\s+(\S+)", s, re.M)]
    return found[0] if found else None


def notebook_imports(nb: Path) -> set[str]:
    "Package modules imported anywhere in the notebook's code cells (magics and shell lines left out)."
    out = set()
    for src in notebook_cells(nb):
        code = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())
        out |= {t for n in ast.walk(ast.parse(code, nb.name)) for t in project_targets(n) if t}
    return out


def test_notebooks_are_named_after_their_modules():
    nbs = notebooks()
    assert [int(p.name[:2]) for p in nbs] == list(range(len(nbs))), "number the notebooks 00, 01, ... without gaps"
    for p in nbs:
        mod = notebook_module(p)
        assert mod is None or p.stem[3:] == mod, f"{p.name} exports {mod}: name it {p.name[:3]}{mod}.ipynb"
    mods = [m for m in map(notebook_module, nbs) if m]
    assert mods == LAYERS, "the notebooks' modules, in file order, must be LAYERS"


@pytest.mark.parametrize("nb", notebooks(), ids=lambda p: p.stem)
def test_notebook_order(nb):
    "A notebook imports (in its code and test cells) only modules of the notebooks before it."
    where = {notebook_module(p): p.stem for p in notebooks()}
    later = sorted(m for m in notebook_imports(nb) - {notebook_module(nb)}
                   if m in where and where[m] > nb.stem and (nb.stem, m) not in FORWARD_IMPORTS)
    assert not later, f"{nb.name} imports {later}, whose notebooks come after it ({[where[m] for m in later]})"


def test_forward_imports_are_current():
    where = {notebook_module(p): p.stem for p in notebooks()}
    for stem, mod in FORWARD_IMPORTS:
        nb = NBS / f"{stem}.ipynb"
        assert nb.is_file() and mod in notebook_imports(nb) and where[mod] > stem, f"stale exception {stem} -> {mod}"
