"""Tests of the exported `command_corpus` module and its use by `data` (offline, no speech)."""
import pytest
from elf_s2t_nb import command_corpus as cc
from elf_s2t_nb.core import ConfigError, DataConfig
from elf_s2t_nb.data import load_verses, plan_split, plan_utterances
from elf_s2t_nb.core import get_preset, override
from elf_s2t_nb.pipeline import train_run, train_texts


def test_splits_are_sized_disjoint_and_seeded():
    sp = {s: cc.command_sentences(s) for s in ("train", "dev", "test")}
    assert [len(v) for v in sp.values()] == [3500, 250, 250]
    for lang in cc.LANGS:
        train = {r[lang] for r in sp["train"]}
        assert not train & {r[lang] for r in sp["dev"] + sp["test"]}
    assert cc.command_sentences("test") == sp["test"]
    assert [r["en"] for r in cc.command_sentences("test", seed=5)] != [r["en"] for r in sp["test"]]
    assert len(cc.command_vocabulary("train")) >= 200
    with pytest.raises(cc.GrammarError, match="in both train and test"):
        cc.check_disjoint({"train": sp["train"][:2], "dev": [], "test": sp["train"][1:2]})


def test_numbers_and_confusable_pairs():
    said = (cc.en_number(312), cc.de_number(312), cc.fr_number(71))
    assert said == ("three hundred twelve", "dreihundertzwölf", "soixante et onze")
    assert cc.de_number(45) == "fünfundvierzig" and cc.de_number(21) == "einundzwanzig"
    counts = cc.command_stats()["confusable"]
    assert all(a and b for pairs in counts.values() for a, b in pairs.values())


def test_plan_matches_the_verse_format_and_hides_test_voices():
    spec = cc.plan_command_utterances("de", "test", 50, seed=2)
    assert [list(s) for s in spec] == [list(plan_utterances(load_verses(), "de", "test", 1)[0])] * 50
    assert all(s["uid"].startswith("cmd-de-") for s in spec)
    assert {s["voice"].split("+")[1] for s in spec} <= set(cc.TEST_VARIANTS)
    assert min(s["rate"] for s in cc.plan_command_utterances("en", "test")) < cc.COMMAND_RATES["train"][0]
    with pytest.raises(ConfigError, match="no synthetic speech"):
        cc.plan_command_utterances("it")


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
