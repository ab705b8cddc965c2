"""The command corpus (`command_corpus`, unit-tested in 06_command_corpus) as `data` and `pipeline` use it (offline)."""
import pytest
from elf_s2t_nb import command_corpus as cc
from elf_s2t_nb.core import ConfigError, DataConfig
from elf_s2t_nb.data import load_verses, plan_split, plan_utterances
from elf_s2t_nb.core import get_preset, override
from elf_s2t_nb.pipeline import train_run, train_texts


def test_plan_split_and_train_texts_follow_the_source():
    cmd = DataConfig(source="commands", task="s2tt", src_lang="fr", n_train=4, n_eval=2)
    assert [s["uid"][:7] for s in plan_split(cmd, "train")] == ["cmd-fr-"] * 4
    assert len(plan_split(cmd, "dev")) == 2
    assert plan_split(DataConfig(n_train=3), "train") == plan_utterances(load_verses(), "en", "train", 3)
    with pytest.raises(ConfigError, match="not an offline corpus"):
        plan_split(DataConfig(source="librispeech"), "train")
    texts = train_texts(override(get_preset("cpu-tiny"), ["data.source=commands"]))
    assert set(texts) <= {r["en"] for r in cc.command_sentences("train")} and len(texts) == 3500


def test_train_run_takes_both_offline_corpora_only(tmp_path):
    with pytest.raises(ConfigError, match="unknown; choose one of synth, commands, librispeech, covost2"):
        train_run(override(get_preset("cpu-tiny"), ["data.source=bogus"]), out=tmp_path)
    assert not list(tmp_path.iterdir())                        # refused before making a run folder
