"""Tests of the exported `analysis` module: alignments, word latents, distances, ranks, AUC, token margins."""
import math
import pytest
import torch

from elf_s2t_nb.evaluate import EvalError
from elf_s2t_nb.analysis import (WordSpace, align_tokens, align_words, auc_less, confusion_analysis, error_summary,
                                 margin_summary, top2_margin, token_margins, word_latents)


class FakeTokenizer:
    all_special_ids = [0, 1]                        # 0 = EOS/pad, 1 = unknown
    def __init__(self, vocab): self.vocab = vocab


class FakeEncoder:
    "Each word is one token (or two for words with a '-'); latents are fixed vectors so distances are known."
    eos_id, dim = 0, 3
    def __init__(self, vectors: dict):
        self.vectors, self.ids = dict(vectors), {w: i + 2 for i, w in enumerate(vectors)}
        self.tokenizer = FakeTokenizer(self.ids)
    def encode(self, texts):
        L = 4
        ids, lat = torch.zeros(len(texts), L, dtype=torch.long), torch.zeros(len(texts), L, self.dim)
        for b, t in enumerate(texts):
            for j, piece in enumerate(t.split("-")):
                ids[b, j] = self.ids.get(piece, 1); lat[b, j] = torch.tensor(self.vectors.get(piece, [0.0, 0.0, 0.0]))
            lat[b, j + 1:] = 9.0                        # EOS padding latents must not leak into the word's mean
        return ids, lat


VEC = {"cat": [1.0, 0.0, 0.0], "cap": [0.9, 0.1, 0.0], "dog": [-0.5, 1.0, 0.0], "sun": [0.0, 0.0, 1.0], "cab": [0.8, 0.0, 0.2]}


def test_align_words_classifies_every_word():
    ops = align_words(["a cat sat on mat", "a big dog ran", "hello world"], ["A cat sat on the mat.", "a dog ran", "Hello, word!"])
    by_utt = lambda u: [(o["op"], o["ref"], o["hyp"]) for o in ops if o["utt"] == u]
    assert ("deletion", "the", "") in by_utt(0) and ("insertion", "", "big") in by_utt(1)
    assert by_utt(2) == [("correct", "hello", "hello"), ("substitution", "word", "world")]
    s = error_summary(ops)
    assert s["counts"] == dict(correct=9, substitution=1, deletion=1, insertion=1) and s["n_ref_words"] == 11
    assert s["top_pairs"] == [(("word", "world"), 1)] and s["rates"]["deletion"] == pytest.approx(1 / 11)


def test_align_words_skips_empty_references_and_checks_lengths():
    ops = align_words(["x", "a b"], ["", "a c"])
    assert {o["utt"] for o in ops} == {1} and [o["op"] for o in ops] == ["correct", "substitution"]
    with pytest.raises(EvalError): align_words(["a"], [])


def test_word_latents_mean_of_own_tokens_only():
    enc = FakeEncoder(VEC)
    lat = word_latents(["cat", "cat-dog"], enc)
    assert torch.allclose(lat[0], torch.tensor([1.0, 0, 0])) and torch.allclose(lat[1], torch.tensor([0.25, 0.5, 0]))
    with pytest.raises(EvalError, match="no ordinary token"):
        enc.ids["odd"] = 1; enc.vectors["odd"] = [1, 1, 1]; word_latents(["odd"], enc)


def test_word_space_distances_and_ranks():
    ws = WordSpace(FakeEncoder(VEC), list(VEC))
    d = ws.distances(["cat", "cat"], ["cap", "sun"])
    assert d["cos"][0] < 0.01 and d["cos"][1] == pytest.approx(1.0) and d["l2"][1] == pytest.approx(math.sqrt(2))
    # neighbours of 'cat' by cosine: cap (0.994), cab (0.970), sun (0), dog (-0.45)
    assert ws.ranks(["cat"] * 4, ["cap", "cab", "sun", "dog"]).tolist() == [1, 2, 3, 4]
    with pytest.raises(EvalError, match="not in this word space"): ws.distances(["cat"], ["zebra"])


def test_auc_less():
    assert auc_less(torch.tensor([0.0, 0.1]), torch.tensor([1.0, 2.0]))[0] == 1.0
    assert auc_less(torch.tensor([3.0]), torch.tensor([1.0, 2.0]))[0] == 0.0
    assert math.isnan(auc_less(torch.tensor([]), torch.tensor([1.0]))[0])


def test_confusion_analysis_close_errors_beat_random_pairs():
    ws = WordSpace(FakeEncoder(VEC), list(VEC))
    ops = [dict(utt=0, op="substitution", ref="cat", hyp="cap"), dict(utt=0, op="substitution", ref="cat", hyp="cab"),
           dict(utt=1, op="correct", ref="dog", hyp="dog")]
    c = confusion_analysis(ops, ws, n_random=50)
    assert c["n_pairs"] == 2 and c["auc_cos"] > 0.7 and c["median_cos"] < c["median_rand_cos"]
    assert c["rank"].tolist() == [1.0, 2.0] and len(c["rand_cos"]) == 100
    assert confusion_analysis(ops[2:], ws)["n_pairs"] == 0


def test_align_tokens_and_margins():
    assert align_tokens([4, 5, 6], [4, 7, 6]) == [("correct", 4), ("substitution", 7), ("correct", 6)]
    assert align_tokens([4, 6], [4, 5, 6]) == [("correct", 4), ("correct", 6)]
    logits = torch.tensor([[10.0, 0.0, 0.0], [1.0, 1.0, 0.0]])
    m = top2_margin(logits)
    assert m[0] > 0.99 and m[1] == pytest.approx(0.0)


def test_token_margins_from_kept_logits():
    class Tok: all_special_ids = [0]
    class Enc: eos_id, tokenizer = 0, Tok()
    V = 6
    logits = torch.full((1, 5, V), -5.0)
    for j, (tok, runner) in enumerate([(2, 3), (4, 5), (0, 1), (0, 1), (0, 1)]):
        logits[0, j, tok] = 5.0 if j == 0 else 1.0; logits[0, j, runner] = 0.9
    kept = [dict(logits=logits, ids=logits.argmax(-1), ref_ids=torch.tensor([[2, 5, 0, 0, 0]]))]
    tm = token_margins(None, kept, Enc())
    assert tm["status"] == ["correct", "substitution"] and tm["ref_rank"].tolist() == [2.0]
    s = margin_summary(tm)
    assert s["n_right"] == 1 and s["n_wrong"] == 1 and s["mean_wrong"] < s["mean_right"] and s["frac_ref_runner_up"] == 1.0
    assert s["argmax_agreement"] == 1.0


def test_special_ids_in_compact_and_tokenizer_vocabularies():
    from elf_s2t_nb.analysis import special_ids
    class Tok: all_special_ids = [100, 101, 102]
    class TE: eos_id, tokenizer = 102, Tok()
    class Compact:                                  # like latents.CorpusVocab: compact id -> tokenizer id
        eos_id, tokens, text_encoder = 0, [102, 100, 7, 9, 101], TE()
    assert special_ids(TE()) == {100, 101, 102}
    assert special_ids(Compact()) == {0, 1, 4}


def test_confusion_counts_words_moved_within_the_sentence():
    ws = WordSpace(FakeEncoder(VEC), list(VEC))
    ops = [dict(utt=0, op="substitution", ref="cat", hyp="dog"), dict(utt=0, op="correct", ref="dog", hyp="dog"),
           dict(utt=1, op="substitution", ref="sun", hyp="cab")]
    assert confusion_analysis(ops, ws, n_random=5)["frac_hyp_in_ref"] == 0.5
