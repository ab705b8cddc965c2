"""The library is layered: each module imports only modules of the layers before it (so the import graph is
acyclic), always at the top of the module, never inside a function (lazy imports are for optional third-party
packages only: huggingface_hub, datasets, pandas, matplotlib, ipywidgets, ...)."""
import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "elf_s2t_nb"

# Every module of the package, in an order each may import only from the modules listed before it.
LAYERS = [
    "core",                      # errors, config, device, atomic I/O, timing, precision policy, progress
    "audio", "command_corpus",   # building blocks
    "whisper_weights", "whisper_encoder",
    "projector",
    "latents",                   # text encoder and the decode-head vocabularies
    "data",                      # corpora, datasets, length bucketing, loaders
    "paper_data",                # the paper's hub datasets (LibriSpeech, CoVoST 2)
    "flow",
    "model",                     # ELF, ElfS2T, build_model, official checkpoints
    "sampling",
    "run_state",
    "train",
    "evaluate",
    "shards", "gpu", "gpubench",  # the paper-scale GPU branch
    "pipeline",                  # stages, run folders, transcription
    "analysis", "explorer",
    "tiny", "bench", "ar_baseline", "models",
    "demo",
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
