"""Shipped models (`elf_s2t_nb.models`): pack a run, list it, load it back and decode the same as the run; damaged
installs and unknown names are one-line errors; the CLI's `models` and `transcribe --model` through `cli.main` with
ELF_S2T_SHIPPED pointing at a temporary folder; the package's own shipped folder fits its budget and ships in the wheel.

Training even a tiny run takes a minute, so the run here is written the cheapest way: the cpu-tiny model with one
layer at seeded random weights, saved by `run_state.save_checkpoint` as training saves it (no training step)."""
import dataclasses
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import elf_s2t_nb.models as models
from elf_s2t_nb.cli import main
from elf_s2t_nb.core import CheckpointError, ConfigError, get_preset, save_config, seed_everything
from elf_s2t_nb.evaluate import transcribe_batches
from elf_s2t_nb.latents import TextEncoder
from elf_s2t_nb.models import (CARD_NAME, MODEL_FILES, SIZE_BUDGET, check_size_budget, file_sha256, load_shipped,
                               pack_model, shipped_for, shipped_models, shipped_root, verify_shipped)
from elf_s2t_nb.latents import make_vocab, save_vocab
from elf_s2t_nb.model import build_model
from elf_s2t_nb.pipeline import load_run, transcribe_files
from elf_s2t_nb.run_state import CKPT_NAME, save_checkpoint
from elf_s2t_nb.whisper_encoder import WhisperEncoder

ROOT = Path(__file__).resolve().parents[1]
COMMAND = "elf-s2t train --set model.depth=1 (untrained, tests/test_models.py)"


def untrained_run(run_dir: Path, task: str = "asr") -> Path:
    "A speech run folder at seeded random weights (the initial output layers are zero: they would decode only '')."
    cfg = get_preset("cpu-tiny")
    cfg.model.depth, cfg.latent.latent_std, cfg.data.task = 1, 1.0, task
    texts = ["open the door", "close the window", "turn on the light"]
    te = TextEncoder.from_config(cfg.latent, texts=texts)
    vocab = make_vocab(cfg, te, te.tokenize(texts)[0])
    seed_everything(0)
    model = build_model(cfg, te.dim, vocab.size, WhisperEncoder(cfg.whisper.name).d_model)
    with torch.no_grad():
        for p in model.parameters(): p.add_(0.02 * torch.randn_like(p))
    save_config(cfg, run_dir / "config.json")
    save_vocab(run_dir, vocab)
    save_checkpoint(run_dir / CKPT_NAME, cfg=cfg, step=7, model=model, opt=torch.optim.AdamW(model.parameters()), ema=model)
    return run_dir


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return untrained_run(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="module")
def root(tmp_path_factory, run_dir) -> Path:
    "A shipped folder holding the run packed as 'tiny-asr'."
    root = tmp_path_factory.mktemp("shipped")
    pack_model(run_dir, root, "tiny-asr", "asr", {"wer": 0.95, "cer": 0.7}, COMMAND)
    return root


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> list[Path]:
    "Two short noise clips as wav files."
    d = tmp_path_factory.mktemp("clips")
    out = []
    for i in range(2):
        p = d / f"clip{i}.wav"
        sf.write(p, np.random.default_rng(i).standard_normal(16000 * (i + 1)).astype(np.float32) * 0.1, 16000)
        out.append(p)
    return out


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys, *argv, says: str) -> str:
    "The command fails as a user error: exit code 2, one line on stderr that says `says`."
    code, out, err = run_cli(capsys, *argv)
    lines = err.strip().splitlines()
    assert (code, len(lines)) == (2, 1), (code, err)
    assert lines[0].startswith("elf-s2t: error: ") and says in lines[0], lines[0]
    return lines[0]


def test_pack_writes_fp16_ema_weights_and_a_card(root, run_dir):
    folder = root / "tiny-asr"
    assert sorted(p.name for p in folder.iterdir()) == sorted([CARD_NAME, *MODEL_FILES])
    assert [p.name for p in root.iterdir()] == ["tiny-asr"]                  # no temporary folder left behind
    ck = torch.load(folder / CKPT_NAME, weights_only=True)
    src = torch.load(run_dir / CKPT_NAME, weights_only=True)
    assert sorted(ck) == ["config", "ema", "model", "step"] and ck["step"] == 7   # no optimizer, data or rng state
    assert sorted(ck["ema"]) == sorted(src["ema"]) and {v.dtype for v in ck["ema"].values()} == {torch.float16}
    assert all(torch.equal(ck["ema"][k], src["ema"][k].half()) for k in src["ema"])
    assert (folder / "config.json").read_bytes() == (run_dir / "config.json").read_bytes()
    assert (folder / "vocab.json").read_bytes() == (run_dir / "vocab.json").read_bytes()
    card = json.loads((folder / CARD_NAME).read_text())
    assert (card["name"], card["task"], card["metrics"], card["command"], card["step"]) == \
        ("tiny-asr", "asr", {"wer": 0.95, "cer": 0.7}, COMMAND, 7)
    assert card["git_commit"] is None or len(card["git_commit"].split("+")[0]) == 40
    assert card["created"].endswith("+00:00") and (card["whisper"], card["text_encoder"]) == ("tiny.en", "minilm")
    for f in MODEL_FILES:
        assert card["files"][f] == {"bytes": (folder / f).stat().st_size, "sha256": file_sha256(folder / f)}
    assert card["size_bytes"] == sum(card["files"][f]["bytes"] for f in MODEL_FILES)
    assert card["files"][CKPT_NAME]["bytes"] < 0.6 * (run_dir / CKPT_NAME).stat().st_size   # fp16, weights stored once


def test_pack_mistakes_write_nothing(tmp_path, run_dir, root):
    with pytest.raises(ConfigError, match="exists"): pack_model(run_dir, root, "tiny-asr", "asr", {}, "")
    with pytest.raises(ConfigError, match="trained for asr, not s2tt"): pack_model(run_dir, tmp_path, "m", "s2tt", {}, "")
    with pytest.raises(ConfigError, match="choose one of asr, s2tt"): pack_model(run_dir, tmp_path, "m", "ocr", {}, "")
    with pytest.raises(ConfigError, match="folder name"): pack_model(run_dir, tmp_path, "../m", "asr", {}, "")
    with pytest.raises(ConfigError, match="dict of scores"): pack_model(run_dir, tmp_path, "m", "asr", 0.3, "")
    with pytest.raises(CheckpointError, match="run folder not found"): pack_model(tmp_path / "no", tmp_path, "m", "asr", {}, "")
    text = tmp_path / "text"
    text.mkdir()
    ck = torch.load(run_dir / CKPT_NAME, weights_only=True)
    ck["ema"] = {k: v for k, v in ck["ema"].items() if not k.startswith("projector.")}
    torch.save(ck, text / CKPT_NAME)
    for f in ("config.json", "vocab.json"): shutil.copy(run_dir / f, text / f)
    with pytest.raises(ConfigError, match="text-only run"): pack_model(text, tmp_path / "s", "m", "asr", {}, "")
    (text / "vocab.json").unlink()
    with pytest.raises(CheckpointError, match="vocab.json is missing"): pack_model(text, tmp_path / "s", "m", "asr", {}, "")
    assert not (tmp_path / "s").exists() or list((tmp_path / "s").iterdir()) == []


def test_pack_is_atomic_and_overwrites_in_place(tmp_path, run_dir, monkeypatch):
    real = models.atomic_write_text
    def crash(path, text):                                                    # the card is the last file written
        if Path(path).name == CARD_NAME: raise KeyboardInterrupt
        return real(path, text)
    monkeypatch.setattr(models, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt): pack_model(run_dir, tmp_path, "m", "asr", {}, "")
    assert list(tmp_path.iterdir()) == [] and shipped_models(tmp_path) == []  # no half model, no temporary folder
    monkeypatch.setattr(models, "atomic_write_text", real)
    pack_model(run_dir, tmp_path, "m", "asr", {"wer": 1.0}, "")
    pack_model(run_dir, tmp_path, "m", "asr", {"wer": 0.5}, "", overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["m"] and shipped_models(tmp_path)[0]["metrics"] == {"wer": 0.5}


def test_size_budget(tmp_path, run_dir, root):
    total = check_size_budget(root)
    assert total == sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    with pytest.raises(ConfigError, match="over the 0.001 MB budget"): check_size_budget(root, budget=1000)
    with pytest.raises(ConfigError, match="over the"):
        pack_model(run_dir, root, "too-big", "asr", {}, "", budget=total + 1000)
    assert not (root / "too-big").exists()
    assert check_size_budget(tmp_path / "nothing") == 0


def test_the_package_shipped_folder_fits_the_budget_and_verifies(monkeypatch):
    "What the package ships: at most 25 MB in all, and every model matches its card (a bad commit fails here)."
    monkeypatch.delenv(models.SHIPPED_ENV, raising=False)
    folder = shipped_root()
    assert folder == ROOT / "elf_s2t_nb" / "shipped" and (folder / "README.txt").is_file()
    assert check_size_budget() <= SIZE_BUDGET
    for card in shipped_models():
        assert verify_shipped(card["path"])["name"] == Path(card["path"]).name
        assert card["task"] in ("asr", "s2tt") and card["metrics"], card["name"]   # a shipped model says how good it is


def test_listing_and_choosing(root, tmp_path):
    cards = shipped_models(root)
    assert [(c["name"], c["task"], c["path"]) for c in cards] == [("tiny-asr", "asr", str(root / "tiny-asr"))]
    assert shipped_for("asr", root)["name"] == "tiny-asr"
    with pytest.raises(ConfigError, match="no s2tt model is shipped .*pass --run"): shipped_for("s2tt", root)
    assert shipped_models(tmp_path / "nothing") == []
    (tmp_path / ".m.partial-1").mkdir()                                      # an interrupted pack is not listed
    (tmp_path / ".m.partial-1" / CARD_NAME).write_text("{}")
    assert shipped_models(tmp_path) == []


def test_the_shipped_model_decodes_like_the_run(root, run_dir, clips):
    run, shipped = load_run(run_dir), load_shipped("tiny-asr", root)
    assert type(shipped) is type(run) and shipped.dir == root / "tiny-asr"
    assert {p.dtype for p in shipped.model.parameters()} == {torch.float32}
    a, b = run.model.state_dict(), shipped.model.state_dict()
    assert all(torch.equal(b[k], a[k].half().float()) for k in a if a[k].is_floating_point())  # fp16 rounding, nothing else
    hyps = transcribe_files(run, clips, steps=4)
    assert transcribe_files(shipped, clips, steps=4) == hyps and all(hyps), hyps
    def final_state(r):                                                        # every text slot's id and the final latents
        feats, lens = r.whisper.encode([sf.read(c, dtype="float32")[0] for c in clips])
        batch = {"features": feats, "feat_lens": lens, "text": [""] * len(clips), "ids": torch.zeros(len(clips), 1)}
        kept = transcribe_batches(r.model, [batch], dataclasses.replace(r.cfg.sample, steps=4), r.vocab, keep=True)["kept"][0]
        return kept["ids"], kept["x_final"]
    (ia, xa), (ib, xb) = final_state(run), final_state(shipped)
    assert torch.equal(ia, ib) and torch.allclose(xa, xb, atol=1e-2)


@pytest.fixture()
def damaged_root(tmp_path, root) -> Path:
    "A copy of the shipped folder, to damage."
    shutil.copytree(root, tmp_path / "shipped")
    return tmp_path / "shipped"


@pytest.mark.parametrize("f", MODEL_FILES)
def test_damaged_files_are_one_line_errors(capsys, monkeypatch, damaged_root, clips, f):
    monkeypatch.setenv(models.SHIPPED_ENV, str(damaged_root))
    p = damaged_root / "tiny-asr" / f
    good = p.read_bytes()
    for damage, says in [(good[:len(good) // 2], "is truncated or damaged"),
                         (good[:-1] + bytes([good[-1] ^ 1]), "is damaged (sha256 mismatch)"),
                         (None, "is missing")]:
        if damage is None: p.unlink()
        else: p.write_bytes(damage)
        with pytest.raises(CheckpointError, match="reinstall elf-s2t-nb") as e: load_shipped("tiny-asr")
        assert str(p) in str(e.value) and says in str(e.value) and "\n" not in str(e.value)
        line = user_error(capsys, "transcribe", "--model", "tiny-asr", clips[0], says=says)
        assert str(p) in line and line.endswith("reinstall elf-s2t-nb")
        user_error(capsys, "transcribe", clips[0], says=f"{f} {says}")     # the default model: the same check
    p.write_bytes(good)
    assert verify_shipped(damaged_root / "tiny-asr")["name"] == "tiny-asr"


def test_a_damaged_or_missing_card(capsys, monkeypatch, damaged_root, clips):
    monkeypatch.setenv(models.SHIPPED_ENV, str(damaged_root))
    card = damaged_root / "tiny-asr" / CARD_NAME
    card.write_text('{"name": "tiny')
    user_error(capsys, "models", says=f"{card} is damaged (not JSON): reinstall elf-s2t-nb")
    user_error(capsys, "transcribe", "--model", "tiny-asr", clips[0], says="reinstall elf-s2t-nb")
    card.unlink()
    with pytest.raises(CheckpointError, match="card.json is missing: reinstall"): load_shipped("tiny-asr")


def test_unknown_names_list_what_is_shipped(capsys, monkeypatch, root, tmp_path, clips):
    with pytest.raises(ConfigError, match="no shipped model named 'best'; shipped: tiny-asr$"): load_shipped("best", root)
    with pytest.raises(ConfigError, match="shipped: tiny-asr"): load_shipped("../tiny-asr", root)
    with pytest.raises(ConfigError, match="none are shipped"): load_shipped("tiny-asr", tmp_path)
    with pytest.raises(ConfigError, match="is an asr model, not s2tt"): load_shipped("tiny-asr", root, task="s2tt")
    monkeypatch.setenv(models.SHIPPED_ENV, str(root))
    user_error(capsys, "transcribe", "--model", "best", clips[0], says="no shipped model named 'best'; shipped: tiny-asr")


def test_cli_models_and_transcribe_with_a_shipped_model(capsys, monkeypatch, root, run_dir, clips, tmp_path):
    monkeypatch.setenv(models.SHIPPED_ENV, str(root))
    code, out, _ = run_cli(capsys, "models")
    (line,) = out.splitlines()
    assert code == 0 and line.split("\t")[:3] == ["tiny-asr", "asr", "wer=0.95 cer=0.7"] and "MB" in line
    code, by_run, err = run_cli(capsys, "transcribe", "--run", run_dir, "--steps", "4", *clips)
    assert code == 0, err
    for argv in (("--model", "tiny-asr"), (), ("--task", "asr")):
        code, out, err = run_cli(capsys, "transcribe", *argv, "--steps", "4", *clips)
        assert (code, out) == (0, by_run), (argv, err)
    assert [ln.split("\t")[0] for ln in by_run.splitlines()] == [str(c) for c in clips]
    user_error(capsys, "transcribe", "--task", "s2tt", clips[0], says="no s2tt model is shipped")
    user_error(capsys, "transcribe", "--model", "tiny-asr", "--task", "s2tt", clips[0], says="not s2tt")
    user_error(capsys, "transcribe", "--model", "tiny-asr", "--run", run_dir, clips[0], says="not both")
    user_error(capsys, "transcribe", "--model", "tiny-asr", tmp_path / "nope.wav", says="not found")
    monkeypatch.setenv(models.SHIPPED_ENV, str(tmp_path))                    # nothing shipped
    code, out, _ = run_cli(capsys, "models")
    assert code == 0 and out.startswith("no shipped models") and "pack_model" in out and len(out.splitlines()) == 1
    user_error(capsys, "transcribe", clips[0], says="no asr model is shipped")
    assert "pass --run" in user_error(capsys, "transcribe", clips[0], says="no asr model")
    code, out, _ = run_cli(capsys, "transcribe", "--help")
    assert code == 0 and "--model" in out
    code, out, _ = run_cli(capsys, "--help")
    assert code == 0 and "models" in out and run_cli(capsys, "models", "--help")[0] == 0


def test_the_wheel_carries_the_shipped_folder(tmp_path):
    "Build a wheel of a copy of the source tree with one fake model in shipped/: every file of it is in the wheel."
    src = tmp_path / "src"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True)
    if files.returncode: pytest.skip("not a git checkout")
    for f in files.stdout.split():
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(ROOT / f, src / f)
    fake = src / "elf_s2t_nb" / "shipped" / "fake-asr"
    fake.mkdir(parents=True)
    for f in (*MODEL_FILES, CARD_NAME): (fake / f).write_text("x")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", ".", "-w",
                        str(tmp_path / "dist")], cwd=src, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (whl,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    assert "elf_s2t_nb/shipped/README.txt" in names and "elf_s2t_nb/data/verses.jsonl.gz" in names
    assert {f"elf_s2t_nb/shipped/fake-asr/{f}" for f in (*MODEL_FILES, CARD_NAME)} <= names
