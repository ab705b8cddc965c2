"""Every `elf-s2t` command end to end through `cli.main`, on tiny settings in temporary folders, and the one-line
message with exit code 2 for each command's typical mistakes. One tiny demo (`demo --size tiny --tasks asr`) is
trained once for the module and shared: its `text/` run is a backbone, its `asr/` run a speech run to evaluate."""
import json
import shutil
from pathlib import Path

import pytest
import torch

import elf_s2t_nb.train as train_mod
from elf_s2t_nb.cli import main
from elf_s2t_nb.core import cache_dir

TINY = ["--set", "data.max_words=5", "--set", "data.batch_size=8",      # 42 short training texts, batches of 8
        "--set", "train.log_every=1", "--set", "train.ckpt_every=2"]
TINY_TEXT = TINY + ["--set", "model.depth=1"]


def run(capsys, *argv):
    "Exit code, stdout and stderr of `elf-s2t ARGV`."
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def user_error(capsys, *argv, says: str):
    "The command fails as a user error: exit code 2, one line on stderr that says `says`."
    code, out, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert (code, len(lines)) == (2, 1), (code, err)
    assert lines[0].startswith("elf-s2t: error: ") and says in lines[0], lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    "A demo folder (text/ and asr/ runs, report.md) of the tiny size, trained once for this module."
    out = tmp_path_factory.mktemp("runs")
    assert main(["demo", "--size", "tiny", "--tasks", "asr", "--out", str(out)]) == 0
    (folder,) = out.iterdir()
    return folder


@pytest.fixture()
def clip(demo) -> Path:
    "A test clip of the demo's corpus (spoken by espeak-ng into the cache)."
    return sorted((cache_dir("corpus", "synth") / "en" / "test").glob("*.flac"))[0]


def test_help_of_every_command(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0 and "transcribe" in out
    for cmd in ("demo", "train", "eval", "transcribe", "models", "data", "bench", "config"):
        code, out, _ = run(capsys, cmd, "--help")
        assert (code, out.split()[:2]) == (0, ["usage:", "elf-s2t"]), cmd
    # what `bench` does without --run, as test_bench_trains_its_model_on_the_spot checks it does
    assert "default: a small model trained on the spot" in " ".join(run(capsys, "bench", "--help")[1].split())
    assert "cpu-small" in run(capsys, "train", "--help")[1]          # the presets are listed
    assert run(capsys, "eval")[0] == 2                                # argparse: the run is missing
    assert run(capsys, "nosuchcommand")[0] == 2


def test_config_prints_yaml_and_json(capsys):
    code, out, _ = run(capsys, "config", "--preset", "elf-b-covost2", "--format", "json", "--set", "train.lr=1e-4")
    d = json.loads(out)
    assert code == 0 and (d["name"], d["train"]["lr"], d["model"]["hidden_size"]) == ("elf-b-covost2", 1e-4, 768)
    code, out, _ = run(capsys, "config")
    assert code == 0 and out.startswith("name: cpu-tiny\n")


def test_config_mistakes_are_one_line(capsys, tmp_path):
    user_error(capsys, "config", "--set", "train.lrate=1", says="unknown config field 'train.lrate'")
    user_error(capsys, "config", "--set", "train.lr=fast", says="must be float")
    user_error(capsys, "config", "--set", "lr", says="section.field=value")
    user_error(capsys, "config", "--preset", "gpt-5", says="unknown preset 'gpt-5'")
    user_error(capsys, "config", "--config", tmp_path / "nope.yaml", says="not found")
    (tmp_path / "bad.yaml").write_text("train: [1, 2\n")
    user_error(capsys, "config", "--config", tmp_path / "bad.yaml", says="not valid YAML")
    user_error(capsys, "config", "--preset", "cpu-tiny", "--config", tmp_path / "bad.yaml", says="not both")


def test_demo_tiny_writes_runs_and_report(demo):
    assert sorted(p.name for p in demo.iterdir() if p.is_dir()) == ["asr", "text"]
    assert (demo / "asr" / "checkpoint.pt").is_file() and (demo / "text" / "checkpoint.pt").is_file()
    m = json.loads((demo / "metrics.json").read_text())
    assert (m["size"], m["train"]["asr"]["steps"], m["results"]["asr"]["n_test"]) == ("tiny", 4, 8)
    assert "| asr | ELF-S2T, audio CFG |" in (demo / "report.md").read_text()


def test_demo_and_train_mistakes_fail_before_any_work(capsys, tmp_path):
    user_error(capsys, "demo", "--tasks", "asr,ocr", "--out", tmp_path, says="--tasks")
    user_error(capsys, "demo", "--preset", "cpu-huge", "--out", tmp_path, says="unknown preset 'cpu-huge'")
    user_error(capsys, "demo", "--set", "flow.p_man=0", "--out", tmp_path, says="flow.p_man")
    user_error(capsys, "train", "--preset", "cpu-huge", "--out", tmp_path, says="unknown preset")
    user_error(capsys, "train", "--set", "train.steps=many", "--out", tmp_path, says="must be int")
    user_error(capsys, "train", "--set", "data.source=librispeech", "--out", tmp_path, says="needs latent.vocab=full")
    user_error(capsys, "train", "--init", tmp_path / "nope", "--out", tmp_path, says="not found")
    user_error(capsys, "train", "--resume", tmp_path / "nope", says="nothing to resume")
    assert list(tmp_path.iterdir()) == []                             # no run folder was left behind


def _ckpt(run_dir: Path) -> dict:
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)


def test_train_text_interrupted_then_resumed_matches_a_straight_run(capsys, tmp_path, monkeypatch):
    code, out, _ = run(capsys, "train", "--stage", "text", "--set", "train.steps=4", *TINY_TEXT, "--out", tmp_path / "a")
    assert code == 0 and "trained 4 steps" in out
    (straight,) = (tmp_path / "a").iterdir()
    step = train_mod.train_step
    def interrupted(net, batch, opt, tc, n, *args, **kw):              # Ctrl-C during step 3
        if n == 3: raise KeyboardInterrupt
        return step(net, batch, opt, tc, n, *args, **kw)
    monkeypatch.setattr(train_mod, "train_step", interrupted)
    code, _, err = run(capsys, "train", "--stage", "text", "--set", "train.steps=4", *TINY_TEXT, "--out", tmp_path / "b")
    assert code == 130 and "--resume" in err.strip().splitlines()[-1]
    (cut,) = (tmp_path / "b").iterdir()
    assert _ckpt(cut)["step"] == 2
    monkeypatch.setattr(train_mod, "train_step", step)
    user_error(capsys, "train", "--resume", cut, "--stage", "speech", says="is a text run")
    user_error(capsys, "train", "--resume", cut, "--preset", "cpu-tiny", says="only --set")
    code, out, _ = run(capsys, "train", "--resume", cut)              # the run's own config and stage
    assert code == 0 and "trained 2 steps" in out
    a, b = _ckpt(straight), _ckpt(cut)
    assert b["step"] == 4 and [json.loads(line)["step"] for line in open(cut / "metrics.jsonl")] == [1, 2, 3, 4]
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])   # resuming is exact
    code, out, _ = run(capsys, "train", "--resume", cut, "--set", "train.steps=5")   # a longer run
    assert code == 0 and _ckpt(cut)["step"] == 5


def test_train_speech_from_the_demo_backbone(capsys, tmp_path, demo):
    user_error(capsys, "train", "--stage", "text", "--init", demo / "text", "--out", tmp_path, says="--init")
    code, out, err = run(capsys, "train", "--init", demo / "text", "--set", "train.steps=2", "--set", "data.n_train=16",
                         "--set", "data.batch_size=8", "--set", "train.log_every=1", "--out", tmp_path)
    assert (code, out.splitlines()[-1][:15]) == (0, "trained 2 steps"), err
    (r,) = tmp_path.iterdir()
    assert r.name.startswith("cpu-tiny-speech-") and any(k.startswith("projector.") for k in _ckpt(r)["model"])
    assert json.loads((r / "vocab.json").read_text()) == json.loads((demo / "text" / "vocab.json").read_text())


def test_eval_accepts_a_demo_folder(capsys, demo):
    code, out, _ = run(capsys, "eval", demo, "--limit", "2", "--steps", "2", "--cfg-scale", "1.5")
    d = json.loads(out)
    assert code == 0 and (d["task"], d["split"], d["sample"]["steps"], d["sample"]["cfg_scale"]) == ("asr", "test", 2, 1.5)
    assert 0 <= d["wer"] and (demo / "asr" / "eval-test-cfg1.5-steps2.jsonl").is_file()
    user_error(capsys, "eval", demo / "text", says="text-only run")
    user_error(capsys, "eval", demo, "--task", "s2tt", says="no s2tt run")


def test_eval_mistakes(capsys, tmp_path, demo):
    user_error(capsys, "eval", tmp_path / "nope", says="run folder not found")
    user_error(capsys, "eval", tmp_path, says="not a run folder")
    user_error(capsys, "eval", demo, "--set", "sample.stepz=2", says="sample.stepz")
    user_error(capsys, "eval", demo, "--steps", "0", "--limit", "1", says="steps")


def test_transcribe_a_demo_folder_or_its_run(capsys, demo, clip):
    code, out, _ = run(capsys, "transcribe", "--run", demo, "--steps", "2", clip)
    code2, out2, _ = run(capsys, "transcribe", "--run", demo / "asr", "--steps", "2", clip)
    assert (code, code2) == (0, 0) and out == out2                   # the demo folder means its asr run
    path, text = out.rstrip("\n").split("\t")
    assert path == str(clip) and len(text.split()) > 0


def test_transcribe_mistakes(capsys, tmp_path, demo, clip):
    user_error(capsys, "transcribe", "--run", demo, tmp_path / "nope.wav", says="not found")
    (tmp_path / "notes.wav").write_text("not audio")
    user_error(capsys, "transcribe", "--run", demo, tmp_path / "notes.wav", says="cannot decode it as audio")
    user_error(capsys, "transcribe", "--run", demo / "text", clip, says="text-only run")
    user_error(capsys, "transcribe", "--run", tmp_path / "nope", clip, says="run folder not found")
    user_error(capsys, "transcribe", "--run", tmp_path, clip, says="not a run folder")


def test_damaged_run_files_are_one_line(capsys, tmp_path, demo, clip):
    bad = tmp_path / "asr"
    shutil.copytree(demo / "asr", bad)
    ck = (bad / "checkpoint.pt").read_bytes()
    (bad / "checkpoint.pt").write_bytes(ck[:len(ck) // 2])           # a copy cut short
    for argv in (("eval", bad), ("transcribe", "--run", bad, clip), ("train", "--resume", bad),
                 ("bench", "--run", bad, "--quick", "--out", tmp_path / "b")):
        user_error(capsys, *argv, says="damaged or truncated")
    (bad / "checkpoint.pt").write_bytes(ck)
    (bad / "vocab.json").write_text('{"kind": "corp')
    user_error(capsys, "eval", bad, says="vocab.json is damaged")
    (bad / "config.json").write_text("{")
    user_error(capsys, "eval", bad, says="not valid JSON")


def test_truncated_cache_files_are_rebuilt(capsys, demo):
    feats = sorted(cache_dir("features").rglob("*.pt"))
    for p in feats: p.write_bytes(p.read_bytes()[:100])              # every cached feature cut short
    lat = sorted(cache_dir("latents").rglob("*.pt"))[:50]
    for p in lat: p.write_bytes(b"")
    with pytest.warns(UserWarning, match="damaged"):
        code, out, _ = run(capsys, "eval", demo, "--limit", "2", "--steps", "2")
    assert code == 0 and "wer" in json.loads(out)
    assert sum(p.stat().st_size > 100 for p in feats) >= 8           # the 8 test clips' features written again


def test_data_info_and_build(capsys, demo):
    code, out, err = run(capsys, "data", "--task", "s2tt", "--size", "tiny", "--info")
    assert code == 0, err
    d = json.loads(out)
    assert code == 0 and (d["speech"], d["whisper"], d["test"]["utterances"], d["train"]["utterances"]) == ("de", "base", 8, 16)
    code, out, _ = run(capsys, "data", "--size", "tiny")
    d = json.loads(out[out.index("{"):] if out.startswith("{") else out[out.index("\n{") + 1:])   # after the build's log lines
    assert code == 0 and [d[s]["utterances"] for s in ("train", "dev", "test")] == [16, 8, 8] and d["train"]["hours"] > 0
    code, out, _ = run(capsys, "data", "--size", "tiny", "--info")
    assert all(v["spoken"] == v["utterances"] for k, v in json.loads(out).items() if k in ("train", "dev", "test"))
    user_error(capsys, "data", "--set", "data.max_word=3", says="data.max_word")


def test_bench_trains_its_model_on_the_spot(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                       # a fresh folder: no runs/ anywhere
    code, out, _ = run(capsys, "bench", "--quick")
    assert code == 0 and "no --run given" in out and "# Benchmark: tiny-demo-asr" in out
    res = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert res["n_clips"] == 4 and (tmp_path / "bench" / "bench.md").read_text() in out
    user_error(capsys, "bench", "--run", tmp_path / "nope", says="run folder not found")


def test_train_both_stages_on_the_command_corpus(capsys, tmp_path):
    "data.source=commands goes through the offline corpus path in both stages (a merge once sent it to the hub loader)."
    cmd = ["--set", "data.source=commands", "--set", "latent.max_len=16", "--set", "projector.n_slots=32",
           "--set", "model.depth=1", "--set", "data.batch_size=8", "--set", "train.log_every=1"]
    code, out, err = run(capsys, "train", "--stage", "text", "--set", "train.steps=2", *cmd, "--out", tmp_path / "t")
    assert code == 0, err
    (text,) = (tmp_path / "t").iterdir()
    code, out, err = run(capsys, "train", "--init", text, "--set", "train.steps=2", "--set", "data.n_train=8",
                         "--set", "data.n_eval=4", *cmd, "--out", tmp_path / "s")
    assert (code, out.splitlines()[-1][:15]) == (0, "trained 2 steps"), err
    (r,) = (tmp_path / "s").iterdir()
    assert json.loads((r / "config.json").read_text())["data"]["source"] == "commands"
