"""Tests of the exported `data` module: the verse corpus, synthetic speech, datasets and batches (offline, small)."""
import gzip
from collections import Counter
import numpy as np
import pytest
import soundfile as sf
import torch
from elf_s2t_nb.core import ConfigError, DataConfig
from elf_s2t_nb.data import (TEST_VARIANTS, VERSES, DataError, SpeechTextDataset, BucketBatchSampler, build_synth_split,
                             collate_speech, filter_examples, load_verses, make_loader, plan_utterances, synthesize_corpus)


def test_verses_split_by_book_and_aligned():
    v = load_verses()
    books = {s: {r["book"] for r in v if r["split"] == s} for s in ("train", "dev", "test")}
    assert not books["train"] & books["test"] and not books["train"] & books["dev"]
    assert all(r["en"] and r["de"] and r["fr"] for r in v)
    assert 200 < sum(r["split"] == "test" for r in v) < 1000


def test_damaged_corpus_is_a_clear_error(tmp_path):
    (tmp_path / "cut.gz").write_bytes(VERSES.read_bytes()[:3000])
    with pytest.raises(DataError, match="cut.gz is damaged"):
        load_verses(tmp_path / "cut.gz")
    (tmp_path / "x.gz").write_bytes(gzip.compress(b'{"book": 1}\n'))
    with pytest.raises(DataError, match="line 1 lacks"):
        load_verses(tmp_path / "x.gz")


def test_plan_is_seeded_prefix_stable_and_test_voices_unseen():
    v = load_verses()
    a, b = plan_utterances(v, "fr", "train", 20, seed=3), plan_utterances(v, "fr", "train", 10, seed=3)
    assert a[:10] == b and len({p["uid"] for p in a}) == 20
    train_variants = {p["voice"].split("+")[1] for p in plan_utterances(v, "en", "train")}
    test_variants = {p["voice"].split("+")[1] for p in plan_utterances(v, "en", "test")}
    assert test_variants <= set(TEST_VARIANTS) and not train_variants & test_variants
    with pytest.raises(ConfigError):
        plan_utterances(v, "xx")


def test_synthesis_is_resumable_and_deterministic(tmp_path):
    plan = plan_utterances(load_verses(), "en", "dev", 3)
    recs = synthesize_corpus(plan, tmp_path / "a", workers=2, progress=False)
    stamp = [sf.info(r["path"]).frames for r in recs]
    again = synthesize_corpus(plan, tmp_path / "b", workers=1, progress=False)
    assert [sf.read(r["path"])[0].tolist() for r in recs] == [sf.read(r["path"])[0].tolist() for r in again]
    assert [sf.info(r["path"]).frames for r in synthesize_corpus(plan, tmp_path / "a", progress=False)] == stamp


def _toy_dataset(n=5, L=6, D=4, d=3, pad_multiple=1):
    g = torch.Generator().manual_seed(0)
    feats = [torch.randn(t, d, generator=g) for t in (7, 3, 5, 9, 4)[:n]]
    ids, x0 = torch.randint(0, 50, (n, L), generator=g), torch.randn(n, L, D, generator=g)
    return SpeechTextDataset(feats, ids, x0, [f"t{i}" for i in range(n)], [f"u{i}" for i in range(n)], pad_multiple), feats


def test_batches_pad_and_match_collate():
    ds, feats = _toy_dataset(pad_multiple=4)
    b = ds.__getitems__([3, 1])
    assert b["features"].shape == (2, 12, 3) and b["feat_lens"].tolist() == [9, 3]
    assert torch.allclose(b["features"][1, :3], feats[1].half().float()) and b["features"][1, 3:].abs().sum() == 0
    assert b["loss_mask"].all() and b["loss_mask"].dtype == torch.bool and b["uid"] == ["u3", "u1"]
    c = collate_speech([ds[3], ds[1]], pad_multiple=4)
    assert all(torch.equal(b[k], c[k]) for k in ("features", "feat_lens", "ids", "x0", "loss_mask"))


def test_loader_visits_every_example_once_per_epoch():
    ds, _ = _toy_dataset()
    seen = [u for bt in make_loader(ds, batch_size=2, seed=1) for u in bt["uid"]]
    assert sorted(seen) == sorted(ds.uids)
    s = BucketBatchSampler(ds.feat_lens.tolist(), 2, shuffle=False)
    assert [ds.feat_lens[i].item() for bt in s for i in bt] == sorted(ds.feat_lens.tolist())


def test_filter_counts_what_it_drops():
    recs = [{"text": "a b c"}, {"text": "a"}, {"text": "a b c d e f"}]
    feats = [torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(50, 2)]
    skips = Counter()
    r, f = filter_examples(recs, feats, max_frames=20, min_words=2, max_words=5, skips=skips)
    assert len(r) == 1 and sum(skips.values()) == 2


def test_config_checks():
    with pytest.raises(ConfigError, match="speaks English"):
        build_synth_split(DataConfig(task="asr", src_lang="fr"), "train", None, None)
    with pytest.raises(ConfigError, match="de or fr"):
        build_synth_split(DataConfig(task="s2tt", src_lang="en"), "train", None, None)
