"""`elf-s2t train` / `pipeline.train_run` honour data.source: LibriSpeech and CoVoST 2 stand-ins in the hub layout (offline)."""
import io
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from elf_s2t_nb.audio import synthesize
from elf_s2t_nb.core import ConfigError, get_preset, override
from elf_s2t_nb.paper_data import write_hub_like
from elf_s2t_nb import pipeline


def _enc(x, fmt):
    buf = io.BytesIO()
    sf.write(buf, x, 16_000, format=fmt)
    return buf.getvalue()


_EN = ["the cat sat on the mat today", "a quick brown fox jumps over the dog", "she sells sea shells by the shore"]
_DE = ["die katze sitzt auf der matte", "der hund schläft im garten", "das boot fährt über den see"]


def _tiny(source_kw, tmp_path):
    return override(get_preset("cpu-tiny"), ["latent.vocab=full", "train.steps=2", "train.warmup_steps=1",
                                              "train.ckpt_every=1", "train.log_every=1", "data.batch_size=2",
                                              "model.hidden_size=32", "model.depth=1", "model.num_heads=2",
                                              "data.min_words=1", "data.max_words=20", *source_kw])


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    root = tmp_path_factory.mktemp("hub")
    clips = [{"bytes": _enc(synthesize(t), "FLAC"), "path": f"{i}.flac"} for i, t in enumerate(_EN)]
    for split in ("train.100", "test"):
        write_hub_like(root / "ls", "clean", split, {"file": [c["path"] for c in clips], "audio": clips,
                       "text": [t.upper() for t in _EN], "speaker_id": [1, 1, 2], "chapter_id": [1, 1, 2],
                       "id": [f"1-1-{i:04d}" for i in range(3)]})
    mp3 = [{"bytes": _enc(synthesize(t, voice="de"), "MP3"), "path": f"de_{i}.mp3"} for i, t in enumerate(_DE)]
    for split in ("train", "test"):
        write_hub_like(root / "cv", "de_en", split, {"client_id": ["a", "b", "c"], "file": [c["path"] for c in mp3],
                       "audio": mp3, "sentence": _DE, "translation": _EN, "id": ["de_0", "de_1", "de_2"]})
    return root


@pytest.mark.parametrize("source", ["librispeech", "covost2"])
def test_train_run_uses_the_paper_source(source, stand_ins, tmp_path):
    kw = ([f"data.source=librispeech", f"data.path={stand_ins / 'ls'}"] if source == "librispeech" else
          ["data.source=covost2", "data.task=s2tt", "data.src_lang=de", f"data.path={stand_ins / 'cv'}"])
    cfg = _tiny(kw, tmp_path)
    run = pipeline.train_run(cfg, out=tmp_path, stage="speech", progress=False, limit=20)
    assert (run / "checkpoint.pt").is_file()
    assert json.loads((run / "config.json").read_text())["data"]["source"] == source
    r = pipeline.load_run(run)
    ds = pipeline.speech_split(r.cfg, "test", r.whisper, r.text_encoder, r.vocab, progress=False)
    assert sorted(ds.texts) == sorted(_EN)                  # the stand-in's targets, not the shipped corpus


def test_paper_sources_refuse_what_cannot_work(stand_ins, tmp_path):
    cfg = _tiny(["data.source=librispeech", f"data.path={stand_ins / 'ls'}"], tmp_path)
    with pytest.raises(ConfigError, match="latent.vocab=full"):
        pipeline.train_run(override(cfg, ["latent.vocab=corpus"]), out=tmp_path, stage="speech", progress=False)
    with pytest.raises(ConfigError, match="text stage trains on the shipped corpora"):
        pipeline.train_run(cfg, out=tmp_path, stage="text", progress=False)
    with pytest.raises(ConfigError, match="unknown; choose one of synth, commands, librispeech, covost2"):
        pipeline.train_run(override(cfg, ["data.source=timit"]), out=tmp_path, progress=False)


@pytest.mark.parametrize("source", ["librispeech", "covost2"])
def test_cli_train_on_the_paper_source(source, stand_ins, tmp_path, capsys):
    "`elf-s2t train` through `cli.main` on a hub-layout stand-in: a speech run from scratch on that source."
    from elf_s2t_nb.cli import main
    kw = (["data.source=librispeech", f"data.path={stand_ins / 'ls'}"] if source == "librispeech" else
          ["data.source=covost2", "data.task=s2tt", "data.src_lang=de", f"data.path={stand_ins / 'cv'}"])
    sets = [a for s in ["latent.vocab=full", "train.steps=2", "train.warmup_steps=1", "train.ckpt_every=1",
                        "train.log_every=1", "data.batch_size=2", "model.hidden_size=32", "model.depth=1",
                        "model.num_heads=2", *kw,
                        "data.min_words=7", "data.max_words=8"]   # the stand-ins' 7-8 words; 276 shipped texts, not 4280
            for a in ("--set", s)]
    code = main(["train", *sets, "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.splitlines()[-1].startswith("trained 2 steps"), out
    (run,) = tmp_path.iterdir()
    assert json.loads((run / "config.json").read_text())["data"]["source"] == source
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 2
    code = main(["train", *sets, "--set", "latent.vocab=corpus", "--out", str(tmp_path / "no")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert (code, len(lines)) == (2, 1) and "latent.vocab=full" in lines[0]   # one line, exit 2, before any work
