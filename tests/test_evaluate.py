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


# ---- the decode driver, sweeps, ablations and the Whisper baseline on tiny untrained models ----

class FakeTextEncoder:
    "Just what the driver needs: dim, eos_id and decode (ids -> 'tN tM ...' cut at the first EOS)."
    dim, eos_id = 8, 0
    def decode(self, ids):
        out = []
        for row in torch.as_tensor(ids).tolist():
            row = row[:row.index(0)] if 0 in row else row
            out.append(" ".join(f"t{i}" for i in row))
        return out


@pytest.fixture(scope="module")
def tiny():
    from elf_s2t_nb.model import ELF_cpu_tiny
    from elf_s2t_nb.projector import AudioProjector
    torch.manual_seed(0)
    elf = ELF_cpu_tiny(text_encoder_dim=8, max_length=4 + 5, hidden_size=32, depth=1, num_heads=2, vocab_size=11)
    proj = AudioProjector(6, 8, stack=2, n_slots=4)
    g = torch.Generator().manual_seed(1)
    batches = [dict(features=torch.randn(3, 8, 6, generator=g), feat_lens=torch.tensor([8, 5, 7]),
                    ids=torch.randint(1, 11, (3, 5), generator=g), text=[f"ref {i} {b}" for i in range(3)], uid=[f"{b}{i}" for i in range(3)])
               for b in "ab"]
    return (elf.eval(), proj.eval()), batches


def test_transcribe_batches_is_seeded_and_complete(tiny):
    from elf_s2t_nb.evaluate import transcribe_batches
    model, batches = tiny
    cfg = SampleConfig(steps=3, cfg_scale=2.0)
    r = transcribe_batches(model, batches, cfg, FakeTextEncoder(), keep=True, record=True)
    assert r["uids"] == ["a0", "a1", "a2", "b0", "b1", "b2"] and r["refs"][3] == "ref 0 b" and r["n_utts"] == 6
    assert r["seconds"] > 0 and r["utts_per_s"] == pytest.approx(6 / r["seconds"])
    assert all(0 not in ids for ids in r["ids"]) and r["hyps"][0] == " ".join(f"t{i}" for i in r["ids"][0])
    k = r["kept"][0]
    assert k["cond"].shape == (3, 4, 8) and k["x_final"].shape == (3, 5, 8) and k["trajectory"].shape == (3, 3, 5)
    again = transcribe_batches(model, batches, cfg, FakeTextEncoder(), keep=True)
    assert again["ids"] == r["ids"] and torch.equal(again["kept"][1]["x_final"], r["kept"][1]["x_final"])  # seeded: repeatable
    other = transcribe_batches(model, batches, SampleConfig(steps=3, cfg_scale=2.0, seed=5), FakeTextEncoder(), keep=True)
    assert not torch.allclose(other["kept"][0]["x_final"], k["x_final"])
    with pytest.raises(EvalError, match="empty"): transcribe_batches(model, [], cfg, FakeTextEncoder())
    with pytest.raises(EvalError, match=".elf and .projector"): transcribe_batches(object(), batches, cfg, FakeTextEncoder())


def test_feature_fn_reaches_the_projector(tiny):
    from elf_s2t_nb.evaluate import transcribe_batches
    model, batches = tiny
    seen = []
    def spy(f, l): seen.append(f.clone()); return f * 0, l
    transcribe_batches(model, batches[:1], SampleConfig(steps=2), FakeTextEncoder(), feature_fn=spy, keep=True)
    assert len(seen) == 1 and torch.equal(seen[0], batches[0]["features"])


def test_sweep_and_ablations(tiny):
    from elf_s2t_nb.evaluate import audio_ablations, sweep
    model, batches = tiny
    rows = sweep(model, batches, FakeTextEncoder(), SampleConfig(steps=2), "steps", [1, 2])
    assert [r["steps"] for r in rows] == [1, 2] and all("wer" in r and r["utts_per_s"] > 0 for r in rows)
    with pytest.raises(EvalError, match="not a SampleConfig field"): sweep(model, batches, FakeTextEncoder(), SampleConfig(), "beam", [1])
    ab = audio_ablations(model, batches, SampleConfig(steps=2), FakeTextEncoder())
    assert set(ab) == {"normal", "zero", "noise", "swap"} and ab["normal"]["token_change"] == 0.0
    assert all(0 <= ab[m]["identical"] <= 1 and ab[m]["token_change"] >= 0 for m in ab)
    assert "wer_vs_donor" in ab["swap"]


def test_whisper_greedy_on_a_random_tiny_whisper():
    from whisper.model import ModelDimensions, Whisper
    from elf_s2t_nb.evaluate import whisper_greedy
    torch.manual_seed(0)
    w = Whisper(ModelDimensions(n_mels=80, n_audio_ctx=1500, n_audio_state=32, n_audio_head=2, n_audio_layer=1, n_vocab=51864,
                                n_text_ctx=32, n_text_state=32, n_text_head=2, n_text_layer=1)).eval()
    clips = [np.zeros(8000, np.float32), 0.1 * np.random.default_rng(0).standard_normal(16000).astype(np.float32)]
    r = whisper_greedy(w, clips, batch_size=1, sample_len=5)
    assert len(r["hyps"]) == 2 and all(isinstance(h, str) for h in r["hyps"]) and r["seconds"] > 0
    with pytest.raises(EvalError, match="cannot translate"): whisper_greedy(w, clips, task="translate")
