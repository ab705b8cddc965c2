"""Tests of the exported ELF transformer (`elf_s2t_nb.model`) as users import it."""
import dataclasses
import math
from pathlib import Path

import pytest
import torch

import elf_s2t_nb
from elf_s2t_nb.core import ModelConfig, UserError, get_preset
from elf_s2t_nb.model import (ELF, ELF_B, ELF_L, ELF_M, ELF_cpu_small, ELF_cpu_tiny, CheckpointError, ModelInputError,
                              benchmark_model, count_params, load_elf_checkpoint, model_from_config, rope_tables)

REF = Path(elf_s2t_nb.__file__).resolve().parents[1].parent / "shared" / "reference"
TINY = ModelConfig(text_encoder_dim=32, max_length=16, hidden_size=64, depth=2, num_heads=4, bottleneck_dim=16, vocab_size=100)


def _randomised(cfg=TINY, seed=0):
    "A model whose every parameter is random (so the flow head is not zero)."
    torch.manual_seed(seed)
    m = ELF(cfg).eval()
    with torch.no_grad():
        for p in m.parameters(): p.normal_(0, 0.1)
    return m


def _read_tsv(p):
    rows = [l.split("\t") for l in p.read_text().splitlines()[1:] if l.strip()]
    return {k: (tuple(int(s) for s in shape.strip("(),").split(",") if s.strip()), dtype) for k, shape, dtype in rows}


@pytest.mark.skipif(not (REF / "elf_b_state_dict.tsv").exists(), reason="../shared/reference not available")
def test_elf_b_state_dict_matches_official_layout():
    official = _read_tsv(REF / "elf_b_state_dict.tsv")
    with torch.device("meta"):
        model = ELF_B()
    ours = {k: (tuple(v.shape), str(v.dtype)) for k, v in model.state_dict().items()}
    assert sorted(ours) == sorted(official)
    assert ours == official
    assert sum(math.prod(s) for s, _ in official.values()) == count_params(model) == 104_579_940
    assert "rope_cos" not in ours and "rope_cos" in dict(model.named_buffers())   # non-persistent


@pytest.mark.skipif(not (REF / "elf_golden_tiny.pt").exists(), reason="../shared/reference not available")
def test_golden_outputs_match_official_code():
    g = torch.load(REF / "elf_golden_tiny.pt", weights_only=True)
    m = ELF(ModelConfig(**g["config"])).eval()
    m.load_state_dict(g["state_dict"], strict=True)
    i, o = g["inputs"], g["outputs"]
    with torch.no_grad():
        xd, none = m(i["x_selfcond"], i["t"], i["self_cond_cfg_scale"])
        xm, logits = m(i["x_selfcond"], i["t"], i["self_cond_cfg_scale"], i["decoder_mode"])
        xp, _ = m(i["x_plain"], i["t"], i["self_cond_cfg_scale"])
    assert none is None
    for ours, key in ((xd, "xhat_denoise_mode"), (xm, "xhat_decoder_mode"), (logits, "logits_decoder_mode"),
                      (xp, "xhat_plain_input")):
        assert ours.shape == o[key].shape
        assert (ours - o[key]).abs().max().item() < 1e-5, key
    assert (xd - xm).abs().max() > 1e-3   # the mode tokens matter, so the test can tell the modes apart


def test_param_counts_of_presets():
    with torch.device("meta"):
        counts = {n: count_params(f()) for n, f in (("B", ELF_B), ("M", ELF_M), ("L", ELF_L))}
    assert counts["B"] == 104_579_940
    assert round(counts["M"] / 1e6, 1) == 342.5 and round(counts["L"] / 1e6, 1) == 652.1   # the ELF README's sizes
    assert ELF_cpu_tiny().cfg == get_preset("cpu-tiny").model
    assert ELF_cpu_small().cfg == get_preset("cpu-small").model
    assert model_from_config(TINY).n_params == count_params(ELF(TINY))


def test_rope_prefix_is_identity_and_pairs_interleaved():
    cos, sin = rope_tables(8, n_pos=4, n_prefix=3)
    assert torch.equal(cos[:3], torch.ones(3, 8)) and torch.equal(sin[:3], torch.zeros(3, 8))
    assert torch.equal(cos[:, 0::2], cos[:, 1::2])                # neighbours share an angle
    assert torch.allclose(cos[4, 0], torch.tensor(math.cos(1.0)))  # latent position 1, fastest pair


def test_heads_modes_and_rows():
    m = _randomised()
    x, t = torch.randn(3, 16, 64), torch.tensor([0.1, 0.5, 0.9])
    gate, rows = torch.tensor([0.0, 1.0, 1.0]), torch.tensor([1, 2])
    with torch.no_grad():
        x_den, none = m(x, t)
        x_dec, full = m(x, t, decoder_mode=gate)
        _, part = m(x, t, decoder_mode=gate, logits_rows=rows)
        x_zero_gate, _ = m(x, t, decoder_mode=torch.zeros(3))
        x_plain, _ = m(x[..., :32], t)
    assert none is None and full.shape == (3, 16, 100) and part.shape == (2, 16, 100)
    assert torch.allclose(part, full[rows], atol=1e-5)
    assert torch.allclose(x_zero_gate, x_den, atol=1e-6)
    assert torch.allclose(x_dec[0], x_den[0], atol=1e-6) and not torch.allclose(x_dec[1:], x_den[1:], atol=1e-3)
    assert x_plain.shape == (3, 16, 32) and not torch.allclose(x_plain, x_den)


def test_fresh_model_predicts_zero_and_all_params_learn():
    m = ELF(TINY)
    x = torch.randn(4, 16, 64)
    x_hat, logits = m(x, torch.rand(4), decoder_mode=torch.tensor([1.0, 0, 1, 0]), logits_rows=torch.tensor([0, 2]))
    assert torch.equal(x_hat.detach(), torch.zeros(4, 16, 32))          # zero-initialised flow head
    (x_hat.sub(torch.randn_like(x_hat)).pow(2).mean() + logits.logsumexp(-1).mean()).backward()
    no_grad = [n for n, p in m.named_parameters() if p.grad is None]
    assert no_grad == []


def test_autocast_keeps_heads_float32():
    m = _randomised()
    x, t, gate = torch.randn(2, 16, 64), torch.rand(2), torch.ones(2)
    with torch.no_grad():
        ref = m(x, t, decoder_mode=gate)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            x_hat, logits = m(x, t, decoder_mode=gate)
    assert x_hat.dtype == logits.dtype == torch.float32
    assert (x_hat - ref[0]).abs().max() < 0.05        # bf16 blocks stay close to float32


def test_bad_inputs_get_clear_errors():
    m = ELF(TINY)
    with pytest.raises(ModelInputError, match="max_length=16"):
        m(torch.randn(1, 12, 64), torch.rand(1))
    with pytest.raises(ModelInputError, match="50 channels"):
        m(torch.randn(1, 16, 50), torch.rand(1))
    assert issubclass(ModelInputError, UserError)
    no_sc = ELF(dataclasses.replace(TINY, self_cond=False))
    assert not hasattr(no_sc, "self_cond_proj")
    with pytest.raises(ModelInputError, match="64 channels"):
        no_sc(torch.randn(1, 16, 64), torch.rand(1))
    with pytest.raises(UserError, match="even width"):
        ELF(dataclasses.replace(TINY, hidden_size=60, num_heads=4))   # head_dim 15: RoPE needs pairs
    assert ELF(dataclasses.replace(TINY, hidden_size=60, num_heads=6)).n_params > 0   # head_dim 10 is fine


def test_load_checkpoint_layouts(tmp_path):
    src, online = _randomised(seed=1), _randomised(seed=2)
    ckpt = {"params": online.state_dict(), "ema_params1": src.state_dict(), "step": torch.tensor(7)}
    torch.save(ckpt, tmp_path / "ckpt.pt")
    for got, want in ((load_elf_checkpoint(ELF(TINY), tmp_path / "ckpt.pt"), src),
                      (load_elf_checkpoint(ELF(TINY), ckpt, key="params"), online),
                      (load_elf_checkpoint(ELF(TINY), src.state_dict()), src),
                      (load_elf_checkpoint(ELF(dataclasses.replace(TINY, max_length=40)), str(tmp_path / "ckpt.pt")), src)):
        assert all(torch.equal(v, want.state_dict()[k]) for k, v in got.state_dict().items())


def test_load_checkpoint_mismatch_lists_everything(tmp_path):
    sd = dict(_randomised().state_dict())
    sd["blocks.1.mlp.w3_weight"] = sd.pop("blocks.1.mlp.w3.weight")
    sd["extra.bias"] = torch.zeros(3)
    sd["text_proj.proj1.weight"] = torch.zeros(8, 32)
    with pytest.raises(CheckpointError) as e:
        load_elf_checkpoint(ELF(TINY), sd)
    msg = str(e.value)
    assert "1 missing keys: blocks.1.mlp.w3.weight" in msg
    assert "2 unexpected keys: blocks.1.mlp.w3_weight, extra.bias" in msg
    assert "text_proj.proj1.weight: checkpoint (8, 32) vs model (16, 32)" in msg
    assert isinstance(e.value, UserError)
    with pytest.raises(UserError, match="not found"):
        load_elf_checkpoint(ELF(TINY), tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_elf_checkpoint(ELF(TINY), tmp_path / "junk.pt")


def test_benchmark_model_runs():
    r = benchmark_model(ELF(TINY), batch_size=4, n_iters=1, warmup=0, decoder_prob=0.5)
    assert r["fwd_s"] > 0 and r["fwd_bwd_s"] > 0 and (r["batch_size"], r["max_length"]) == (4, 16)
