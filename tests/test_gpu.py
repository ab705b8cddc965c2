"""Fast checks of the paper-scale helpers (gpu, gpubench, shards) on CPU; the notebooks 25/26/27 test the rest."""
import json, os
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from elf_s2t_nb.core import FlowConfig, ModelConfig, get_preset
from elf_s2t_nb.flow import training_loss
from elf_s2t_nb.gpu import PUBLISHED, expected_numbers, peak_flops, scale_batch, train_step_flops
from elf_s2t_nb.gpubench import GPUBenchError, bench_config, gpu_bench
from elf_s2t_nb.model import ELF, CheckpointError, load_official_elf, resolve_checkpoint
from elf_s2t_nb.projector import AudioProjector
from elf_s2t_nb.data import bucket_batches
from elf_s2t_nb.shards import FeatureCacheError, FeatureShards, precompute_features

TINY = ModelConfig(text_encoder_dim=32, max_length=16, hidden_size=64, depth=2, num_heads=4, bottleneck_dim=16, vocab_size=100)


def test_peak_table_prefers_specific_names():
    assert peak_flops("NVIDIA H100 PCIe")[0] == 756e12 and peak_flops("NVIDIA H100 80GB HBM3")[0] == 989e12
    assert peak_flops("NVIDIA A10G") == (None, "bf16") and peak_flops("NVIDIA A100 80GB PCIe")[0] == 312e12


def test_train_step_flops_match_flop_counter():
    A, L, k, d_w, B = 4, 12, 4, 16, 8
    c = ModelConfig(**{**TINY.__dict__, "max_length": A + L})
    torch.manual_seed(0)
    elf, proj = ELF(c), AudioProjector(d_w, 32, stack=k, n_slots=A)
    fc = FlopCounterMode(display=False)
    with sdpa_kernel(SDPBackend.MATH), fc:
        cond, _ = proj(torch.randn(B, A * k, d_w))
        loss, st = training_loss(elf, torch.randn(B, L, 32), torch.randint(0, 100, (B, L)), None, cond, FlowConfig(),
                                 torch.Generator().manual_seed(1))
        loss.backward()
    pred = train_step_flops(c, B, st["n_decode"].item(), st["n_self_cond"].item(), A, k * d_w, exact=True)
    assert fc.get_total_flops() == pred["total"]


def test_official_checkpoint_layout_and_errors(tmp_path):
    torch.manual_seed(0)
    online, ema = ELF(TINY), ELF(TINY)
    with torch.no_grad(): [p.add_(1.0) for p in ema.parameters()]
    torch.save({"params": online.state_dict(), "ema_params1": ema.state_dict()}, tmp_path / "ck.pt")
    m = load_official_elf(ELF(TINY), tmp_path)
    assert torch.equal(m.blocks[0].attn.qkv.weight, ema.blocks[0].attn.qkv.weight)
    with pytest.raises(CheckpointError, match="unembed_kernel"):
        load_official_elf(ELF(ModelConfig(**{**TINY.__dict__, "vocab_size": 7})), tmp_path / "ck.pt")
    with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}), pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        resolve_checkpoint("embedded-language-flows/not-cached", cache_dir=tmp_path / "hub")


class _Stats:
    name = "stats"
    def encode(self, audios):
        lens = [len(a) // 320 for a in audios]
        out = torch.zeros(len(audios), max(lens), 2)
        for i, a in enumerate(audios):
            fr = torch.as_tensor(a[:lens[i] * 320]).view(-1, 320)
            out[i, :lens[i]] = torch.stack([fr.mean(1), fr.std(1)], -1)
        return out, torch.tensor(lens)


def test_shards_resume_after_damage(tmp_path):
    rng = np.random.default_rng(0)
    data = [{"uid": f"u{i}", "audio": rng.standard_normal(320 * (5 + i)).astype(np.float32), "text": str(i)} for i in range(10)]
    precompute_features(data, _Stats(), tmp_path, shard_size=4)
    (tmp_path / "shard-00001.pt").write_bytes(b"broken")
    with pytest.warns(UserWarning, match="shard-00001"):
        precompute_features(data, _Stats(), tmp_path, shard_size=4)
    ds = FeatureShards(tmp_path, verify=True)
    assert len(ds) == 10 and ds[7]["text"] == "7" and ds[7]["feat_len"] == 12
    with pytest.raises(FeatureCacheError, match="shards of 4"):
        precompute_features(data, _Stats(), tmp_path, shard_size=3)
    batches = bucket_batches(ds.lengths, 3, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(10))


def test_full_bench_refused_without_cuda():
    if torch.cuda.is_available(): pytest.skip("a GPU is present")
    with pytest.raises(GPUBenchError, match="needs a CUDA GPU"):
        gpu_bench("full")
    assert bench_config("tiny").model.max_length == 64


def test_scale_batch_and_table():
    c = scale_batch(get_preset("elf-b-librispeech"), 64)
    assert (c.data.batch_size, c.train.lr, c.train.steps, c.train.warmup_steps) == (64, 0.00025, 800_000, 40_000)
    table = expected_numbers()
    rows = [r for r in table.splitlines() if r.startswith("|")]             # the table; a legend follows it
    assert len(rows) == len(PUBLISHED) + 3 and rows[-1].startswith("| this recipe")
