"""Tests of the exported `evaluate` module: metrics, results files, ablations and the decode driver."""
import json
import numpy as np
import pytest
import torch

from elf_s2t_nb.core import SampleConfig
from elf_s2t_nb.evaluate import (EvalError, NORMALISER, ablate_features, bleu_scores, edit_distance, load_jsonl,
                                 save_jsonl, score, sentence_bleu, utterance_records, wer_scores)


def test_wer_counts_and_normaliser():
    w = wer_scores(["the cat sat on a mat", "hello world"], ["The cat sat on the mat.", "Hello, world!"])
    assert (w["substitutions"], w["deletions"], w["insertions"], w["n_ref_words"]) == (1, 0, 0, 8)
    assert w["wer"] == pytest.approx(1 / 8) and w["raw_wer"] > w["wer"] and w["normaliser"] == NORMALISER


def test_wer_insertions_and_deletions():
    w = wer_scores(["a b c d e", "x"], ["a b c", "x y z"])
    assert (w["insertions"], w["deletions"]) == (2, 2) and w["wer"] == pytest.approx(4 / 6)


def test_mismatched_lists_are_user_errors():
    with pytest.raises(EvalError, match="3 references"): wer_scores(["a"], ["a", "b", "c"])
    with pytest.raises(EvalError, match="empty"): bleu_scores([], [])


def test_bleu_cased_vs_lowercased_and_signature():
    b = bleu_scores(["The Cat sat on the mat today"], ["the cat sat on the mat today"])
    assert b["bleu_lc"] == pytest.approx(100.0) and b["bleu"] < 70
    assert "case:lc" in b["signature_bleu_lc"] and "eff:yes" in b["signature_bleu_lc"]
    assert "case:mixed" in b["signature_bleu"] and "tok:13a" in b["signature_bleu"]


def test_sentence_bleu_effective_order_keeps_short_sentences():
    assert sentence_bleu("hello world", "hello world") == pytest.approx(100.0)
    assert 0 < sentence_bleu("hello there", "hello world") < 100


def test_score_has_both_families():
    s = score(["a b c"], ["a b d"])
    assert s["wer"] == pytest.approx(1 / 3) and s["n_utts"] == 1 and 0 <= s["bleu_lc"] < 100


def test_jsonl_round_trip_atomic_and_damage(tmp_path):
    recs = utterance_records(["u1", "u2"], ["x y", "z"], ["x y", "w"], seconds=[1.0, 2.0])
    assert [r["wer"] for r in recs] == [0.0, 1.0] and recs[1]["seconds"] == 2.0
    p = save_jsonl(recs, tmp_path / "out" / "utts.jsonl")
    assert load_jsonl(p) == recs and not list(p.parent.glob(".*tmp"))
    p.write_text(p.read_text() + "not json\n")
    with pytest.raises(EvalError, match="line 3"): load_jsonl(p)
    with pytest.raises(EvalError, match="not found"): load_jsonl(tmp_path / "missing.jsonl")


def test_ablations():
    g = torch.Generator().manual_seed(0)
    f, l = torch.randn(4, 20, 32, generator=g) * 2, torch.tensor([20, 10, 15, 5])
    assert ablate_features(f, l, "zero")[0].abs().sum() == 0
    fs, ls = ablate_features(f, l, "swap")
    assert torch.equal(fs[0], f[3]) and ls.tolist() == [5, 20, 10, 15]
    fn, ln = ablate_features(f, l, "noise", torch.Generator().manual_seed(1))
    assert torch.equal(fn[1, 10:], f[1, 10:]) and torch.equal(ln, l)
    rms = lambda x: x.pow(2).mean().sqrt().item()
    assert rms(fn[0]) == pytest.approx(rms(f[0]), rel=0.1) and not torch.allclose(fn[0], f[0])
    with pytest.raises(EvalError, match="at least 2"): ablate_features(f[:1], l[:1], "swap")
    with pytest.raises(EvalError, match="unknown ablation"): ablate_features(f, l, "reverse")


def test_edit_distance():
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance("abc", "xyz") == 3 and edit_distance([], []) == 0
