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
                train=[dict(preset="cpu-tiny", optimizer="muon", batch_size=8, params=1000, step_s=0.3, relative=1.0)])


def test_bench_markdown_has_every_table_and_the_ratios():
    md = bench_markdown(_fake_results())
    for s in ("## Whisper features", "## Decoding", "## Training step", "5.00×", "100.0×", "| ELF-S2T | 4 | off | 2.00 | 4.00 | 1.80 | 3.60 | 0.500 |",
              "| Whisper greedy |", "| cpu-tiny | muon | 8 | 1,000 | 0.300 | 1.00 |", "(quick)"):
        assert s in md, s


def test_bench_train_steps_times_a_real_step():
    small = demo_config(steps=1)
    rows = bench_train_steps((small, small), batch_size=2, repeat=1)
    assert [r["preset"] for r in rows] == ["tiny-demo-asr"] * 2 and rows[0]["optimizer"] == "adamw" and rows[0]["params"] > 1e6
    assert all(r["step_s"] > 0 for r in rows) and rows[0]["relative"] == 1.0 and rows[1]["relative"] == pytest.approx(rows[1]["step_s"] / rows[0]["step_s"])
