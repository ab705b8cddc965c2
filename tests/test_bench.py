"""Tests of the exported `bench` module: timing, clips, the markdown table, and a training-step measurement."""
import time
import numpy as np
import pytest

from elf_s2t_nb.evaluate import EvalError
from elf_s2t_nb.bench import as_clips, bench_markdown, bench_train_steps, timed
from elf_s2t_nb.tiny import demo_config


def test_timed_keeps_the_best_and_the_result():
    calls = []
    def fn():
        calls.append(1); time.sleep(0.05 if len(calls) == 2 else 0.01); return len(calls)
    secs, out = timed(fn, repeat=3, warmup=1)
    assert len(calls) == 4 and out == 4 and 0.01 <= secs < 0.05


def test_as_clips_accepts_pairs_and_dicts_and_rejects_bad_audio():
    cl = as_clips([(np.zeros(160, np.float64), "a"), {"audio": np.ones(320), "text": "b", "uid": "u"}])
    assert [c["uid"] for c in cl] == ["0", "u"] and cl[0]["audio"].dtype == np.float32
    with pytest.raises(EvalError, match="clip 0"): as_clips([(np.zeros((2, 2)), "x")])
    with pytest.raises(EvalError, match="no clips"): as_clips([])


def _fake_results():
    return dict(machine=dict(platform="p", python="3", torch="t", threads=2, cuda=None), config="cpu-tiny", n_clips=2, quick=True,
                features=dict(encoder="tiny.en", audio_s=3.0, true_length_s=0.1, full_window_s=0.5, cached_s=0.001,
                              full_over_true=5.0, true_over_cached=100.0, cosine_true_vs_full=0.9),
                decoding=[dict(steps=4, cfg_scale=1.0, cfg=False, seconds=1.0, utts_per_s=2.0, wer=0.5, bleu_lc=10.0,
                               x_whisper=4.0, e2e_utts_per_s=1.8, e2e_x_whisper=3.6)],
                whisper=dict(seconds=4.0, utts_per_s=0.5, wer=0.1, bleu_lc=50.0),
                threads=[dict(threads=1, seconds=1.0, utts_per_s=4.0, relative=1.0), dict(threads=2, seconds=2.0, utts_per_s=2.0, relative=0.5)],
                train=[dict(preset="cpu-tiny", optimizer="muon", batch_size=8, vocab=900, params=1000, step_s=0.3, relative=1.0)])


def test_bench_markdown_has_every_table_and_the_ratios():
    md = bench_markdown(_fake_results())
    for s in ("## Whisper features", "## Decoding", "## Training step", "5.00×", "100.0×", "| ELF-S2T | 4 | off | 2.00 | 4.00 | 1.80 | 3.60 | 0.500 |",
              "| Whisper greedy |", "## CPU threads", "| 2 | 2.00 | 0.50 |", "| cpu-tiny | muon | 8 | 900 | 1,000 | 0.300 | 1.00 |", "(quick)"):
        assert s in md, s


def test_bench_train_steps_times_a_real_step():
    small = demo_config(steps=1)
    rows = bench_train_steps((small, small), batch_size=2, repeat=1)
    assert [r["preset"] for r in rows] == ["tiny-demo-asr"] * 2 and rows[0]["optimizer"] == small.train.optimizer and rows[0]["params"] > 1e5
    assert 100 < rows[0]["vocab"] < 30_522                    # the corpus vocabulary: tokens of the training text
    assert all(r["step_s"] > 0 for r in rows) and rows[0]["relative"] == 1.0 and rows[1]["relative"] == pytest.approx(rows[1]["step_s"] / rows[0]["step_s"])


def test_bench_threads_restores_the_setting():
    import torch
    from elf_s2t_nb.bench import bench_threads
    from elf_s2t_nb.core import SampleConfig
    from elf_s2t_nb.model import ELF_cpu_tiny
    from elf_s2t_nb.projector import AudioProjector
    class TE:
        dim, eos_id = 8, 0
        def decode(self, ids): return ["x"] * len(ids)
    torch.manual_seed(0)
    model = (ELF_cpu_tiny(text_encoder_dim=8, max_length=9, hidden_size=32, depth=1, num_heads=2, vocab_size=11).eval(),
             AudioProjector(6, 8, stack=2, n_slots=4).eval())
    batches = [dict(features=torch.randn(2, 8, 6), feat_lens=torch.tensor([8, 6]), ids=torch.ones(2, 5, dtype=torch.long), text=["a", "b"], uid=["0", "1"])]
    n0 = torch.get_num_threads()
    rows = bench_threads(model, batches, TE(), SampleConfig(steps=2), threads=(1, 2))
    assert [r["threads"] for r in rows] == [1, 2] and rows[0]["relative"] == 1.0 and all(r["utts_per_s"] > 0 for r in rows)
    assert torch.get_num_threads() == n0
