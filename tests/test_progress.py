"""Progress bars of the library's long loops: redrawn in place on a terminal, one line per 10 % in a log."""
import re
from pathlib import Path

import numpy as np
import torch

from elf_s2t_nb.shards import precompute_features

ROOT = Path(__file__).resolve().parents[1]


class _MeanEncoder:
    "A stand-in for the frozen encoder: one 2-d frame (mean, std) per 320 samples."
    name = "mean"

    def encode(self, audios):
        lens = [len(a) // 320 for a in audios]
        out = torch.zeros(len(audios), max(lens), 2)
        for i, a in enumerate(audios):
            fr = torch.as_tensor(a[:lens[i] * 320]).view(-1, 320)
            out[i, :lens[i]] = torch.stack([fr.mean(1), fr.std(1)], -1)
        return out, torch.tensor(lens)


def test_a_long_loop_writes_about_one_line_per_10_percent_to_a_log(tmp_path, capsys):
    rng = np.random.default_rng(0)
    data = [{"uid": f"u{i}", "audio": rng.standard_normal(320 * 3).astype(np.float32), "text": str(i)}
            for i in range(200)]
    # 200 updates of the bar (one per shard); under pytest stderr is captured, i.e. not a terminal
    precompute_features(data, _MeanEncoder(), tmp_path / "f", shard_size=1, batch_size=1)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "caching f" in line]
    assert "\r" not in err
    assert 2 <= len(lines) <= 11, err
    assert lines[-1].startswith("caching f: 100% 200/200"), lines[-1]
    assert re.search(r"clip/s", lines[-1]), lines[-1]         # the rate is in each line


def test_library_bars_come_from_core():
    "Only core's `progress_bar` builds tqdm bars, so every loop gets the log-friendly one."
    offenders = [p.name for p in (ROOT / "elf_s2t_nb").glob("*.py")
                 if p.name not in ("_modidx.py", "core.py")
                 and re.search(r"^\s*(from tqdm|import tqdm)", p.read_text(encoding="utf-8"), re.M)]
    assert offenders == []
