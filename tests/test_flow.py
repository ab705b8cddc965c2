"""Tests of the exported `flow` module: the flow-matching pieces and ELF's training loss."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elf_s2t_nb.core import FlowConfig
from elf_s2t_nb.flow import (add_noise, decoder_input, drop_cond, restore_cond, restore_v, sample_lambda,
                             sample_sc_cfg_scale, sample_t, sc_cfg_target, self_cond_passes, seq_loss_mask,
                             text_loss_mask, training_loss, v_mse, x_to_v)


class StandIn(nn.Module):
    "A tiny network with ELF.forward's signature that mixes slots, reads t, w and the mode gate."
    def __init__(self, d=4, s=7, v=11, h=16):
        super().__init__()
        self.inp, self.mix = nn.Linear(2 * d + 2, h), nn.Linear(s, s)
        self.out, self.head, self.mode = nn.Linear(h, d), nn.Linear(h, v), nn.Parameter(torch.randn(h))

    def forward(self, x, t, sc_cfg_scale=None, decoder_mode=None, logits_rows=None):
        B, S, _ = x.shape
        w = torch.zeros_like(t) if sc_cfg_scale is None else sc_cfg_scale
        h = self.inp(torch.cat([x, t[:, None, None].expand(B, S, 1), w[:, None, None].expand(B, S, 1)], -1))
        h = torch.tanh(h + self.mix(h.transpose(1, 2)).transpose(1, 2))
        if decoder_mode is None:
            return self.out(h), None
        h = h + decoder_mode[:, None, None] * self.mode
        rows = torch.arange(B) if logits_rows is None else logits_rows
        return self.out(h), self.head(h[rows])


class Spy(nn.Module):
    "Records every call of the wrapped network."
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, []

    def forward(self, x, t, sc_cfg_scale=None, decoder_mode=None, logits_rows=None):
        out = self.net(x, t, sc_cfg_scale, decoder_mode, logits_rows)
        self.calls.append(dict(x=x.detach().clone(), t=t.clone(), w=sc_cfg_scale.clone(), grad=torch.is_grad_enabled(),
                               mode=None if decoder_mode is None else decoder_mode.clone(), rows=logits_rows,
                               x_hat=out[0].detach().clone(),
                               logits=None if out[1] is None else out[1].detach().clone()))
        return out


B, A, L, D, V = 6, 3, 4, 4, 11


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    return (torch.randn(B, L, D, generator=g), torch.randint(0, V, (B, L), generator=g),
            torch.randn(B, A, D, generator=g))


def cfg_only(**kw):
    return FlowConfig(**{**dict(decoder_prob=0.0, self_cond_prob=0.0, audio_drop_prob=0.0), **kw})


def test_add_noise_direction_and_scale():
    x0, eps = torch.full((1, 2, 3), 3.0), torch.ones(1, 2, 3)
    assert torch.allclose(add_noise(x0, eps, torch.tensor([0.0])), 2 * eps)      # t = 0 is noise of scale 2
    assert torch.allclose(add_noise(x0, eps, torch.tensor([1.0])), x0)           # t = 1 is data
    assert torch.allclose(add_noise(x0, eps, torch.tensor([0.25])), torch.full((1, 2, 3), 0.75 + 1.5))
    per_token = add_noise(x0, eps, torch.tensor([[0.0, 1.0]]))
    assert torch.allclose(per_token[0, 0], 2 * eps[0, 0]) and torch.allclose(per_token[0, 1], x0[0, 1])


def test_sample_t_logit_normal_and_uniform():
    t = sample_t(200_000, gen=torch.Generator().manual_seed(0))
    assert abs(t.median().item() - 1 / (1 + math.exp(1.5))) < 0.005
    assert abs(t.quantile(0.95).item() - 1 / (1 + math.exp(1.5 - 1.645 * 0.8))) < 0.005
    assert abs(sample_t(200_000, schedule="uniform").mean().item() - 0.5) < 0.005
    with pytest.raises(ValueError, match="unknown time schedule"):
        sample_t(2, schedule="linear")


def test_x_to_v_target_and_cap():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(3, 2, 4, generator=g), torch.randn(3, 2, 4, generator=g)
    t = torch.tensor([0.0, 0.4, 0.95])
    assert torch.allclose(x_to_v(x0, add_noise(x0, eps, t), t), x0 - 2 * eps, atol=1e-5)
    t = torch.tensor([0.99, 0.999, 1.0])
    z = add_noise(x0, eps, t)
    assert torch.allclose(x_to_v(x0, z, t), (x0 - z) / 0.05, atol=1e-5)
    assert torch.allclose(v_mse(x_to_v(x0 + 0.1, z, t), x_to_v(x0, z, t)), torch.full((3, 2), 0.01 / 0.05 ** 2))


def test_masks_and_restore():
    assert torch.equal(seq_loss_mask(text_loss_mask(2, 3, torch.tensor([3, 1])), 2),
                       torch.tensor([[0., 0, 1, 1, 1], [0, 0, 1, 0, 0]]))
    x, c = torch.randn(2, 5, 3), torch.randn(2, 2, 3, requires_grad=True)
    r = restore_cond(x, c)
    assert torch.equal(r[:, :2], c) and torch.equal(r[:, 2:], x[:, 2:]) and torch.equal(x, restore_cond(x, None))
    r.sum().backward()
    assert torch.equal(c.grad, torch.ones_like(c))
    v = restore_v(torch.ones(2, 5, 3), 2)
    assert v[:, :2].abs().sum() == 0 and torch.equal(v[:, 2:], torch.ones(2, 3, 3))


def test_sc_cfg_scale_and_target():
    w = sample_sc_cfg_scale(200_000, gen=torch.Generator().manual_seed(0))
    assert 0.5 <= w.min() and w.max() <= 5.0 and abs(w.median().item() - 2.0) < 0.02
    assert abs(torch.log1p(w).mean().item() - (math.log(1.5) + math.log(6)) / 2) < 0.005
    v, vc, vu = torch.zeros(2, 1, 1), torch.full((2, 1, 1), 3.0), torch.ones(2, 1, 1)
    assert torch.allclose(sc_cfg_target(v, vc, vu, torch.tensor([1.0, 4.0])).flatten(), torch.tensor([0.0, 1.5]))


def test_decoder_input_lambda_and_clean_audio():
    assert abs(sample_lambda((200_000,), 0.8).mean().item() - 0.67) < 0.01
    assert abs(sample_lambda((200_000,), -0.5).mean().item() - 0.39) < 0.01
    x0, eps, c = torch.randn(2, 3, 4), torch.randn(2, 3, 4), torch.randn(2, 2, 4)
    lam = torch.tensor([[1.0, 0.0, 0.5]] * 2)
    zd = decoder_input(x0, eps, lam, c, sigma_d=2.0)
    assert torch.equal(zd[:, :2], c)
    assert torch.allclose(zd[:, 2], x0[:, 0]) and torch.allclose(zd[:, 3], 2 * eps[:, 1])
    assert torch.allclose(zd[:, 4], 0.5 * x0[:, 2] + eps[:, 2])


def test_drop_cond_rate_and_gradient():
    c = torch.randn(2000, 2, 3, requires_grad=True)
    cd, dropped = drop_cond(c, 0.1, torch.Generator().manual_seed(0))
    assert abs(dropped.float().mean().item() - 0.1) < 0.02 and cd[dropped].abs().sum() == 0
    cd.sum().backward()
    assert torch.equal(c.grad[~dropped], torch.ones_like(c[~dropped])) and c.grad[dropped].abs().sum() == 0


def test_self_cond_passes_inputs(batch):
    net = Spy(StandIn(D, A + L, V))
    z, t, w, c = torch.randn(B, A + L, D), torch.rand(B), torch.full((B,), 2.0), batch[2]
    x_u, v_u, v_c = self_cond_passes(net, z, t, w, c)
    p1, p2 = net.calls
    assert not p1["grad"] and not p2["grad"]
    assert torch.equal(p1["x"][:, :A, D:], c) and p1["x"][:, A:, D:].abs().sum() == 0
    assert torch.equal(p2["x"][..., D:], x_u) and torch.equal(x_u[:, :A], c)
    assert torch.allclose(v_c, x_to_v(restore_cond(p2["x_hat"], c), z, t))


def test_loss_pure_denoise_is_text_only_mse(batch):
    x0, ids, c = batch
    net = Spy(StandIn(D, A + L, V))
    loss, st = training_loss(net, x0, ids, None, c, cfg_only(), torch.Generator().manual_seed(0))
    (g,) = net.calls
    z, t = g["x"][..., :D], g["t"]
    assert torch.equal(z[:, :A], c) and torch.equal(g["x"][:, :A, D:], c) and g["mode"] is None
    l2 = v_mse(x_to_v(restore_cond(g["x_hat"], c), z, t), x_to_v(torch.cat([c, x0], 1), z, t))
    assert abs(loss.item() - l2[:, A:].mean().item()) < 1e-5
    assert abs(loss.item() - l2.mean().item()) > 1e-3


def test_loss_self_conditioning_uses_guided_target(batch):
    x0, ids, c = batch
    net = Spy(StandIn(D, A + L, V))
    loss, st = training_loss(net, x0, ids, None, c, cfg_only(self_cond_prob=1.0), torch.Generator().manual_seed(1))
    p1, p2, g = net.calls
    x_u = restore_cond(p1["x_hat"], c)
    assert torch.allclose(g["x"][..., D:], x_u)
    z, t, w = g["x"][..., :D], g["t"], g["w"]
    v_star = sc_cfg_target(x_to_v(torch.cat([c, x0], 1), z, t), x_to_v(restore_cond(p2["x_hat"], c), z, t),
                           x_to_v(x_u, z, t), w)
    assert abs(loss.item() - v_mse(x_to_v(restore_cond(g["x_hat"], c), z, t), v_star)[:, A:].mean().item()) < 1e-5
    plain = v_mse(x_to_v(restore_cond(g["x_hat"], c), z, t), x_to_v(torch.cat([c, x0], 1), z, t))[:, A:].mean()
    assert abs(loss.item() - plain.item()) > 1e-4      # the plain target would be a different number


def test_loss_mixed_rows_one_denominator(batch):
    x0, ids, c = batch
    net = Spy(StandIn(D, A + L, V))
    m = text_loss_mask(B, L, torch.tensor([4, 4, 3, 2, 4, 1]))
    loss, st = training_loss(net, x0, ids, m, c, cfg_only(decoder_prob=0.5), torch.Generator().manual_seed(4))
    (g,) = net.calls
    dec, rows, z, t = g["mode"].bool(), g["rows"], g["x"][..., :D], g["t"]
    assert 0 < len(rows) < B and torch.equal(dec.nonzero().flatten(), rows)
    assert torch.equal(g["t"][dec], torch.ones(len(rows))) and torch.equal(g["x"][dec][:, :A, D:], c[dec])
    assert g["x"][dec][:, A:, D:].abs().sum() == 0 and torch.equal(g["x"][dec][:, :A, :D], c[dec])
    ce = F.cross_entropy(g["logits"][:, A:].reshape(-1, V), ids[rows].reshape(-1), reduction="none").view(-1, L)
    l2 = v_mse(x_to_v(restore_cond(g["x_hat"], c), z, t), x_to_v(torch.cat([c, x0], 1), z, t))[:, A:]
    expect = ((ce * m[rows]).sum() + (l2 * m * (~dec)[:, None]).sum()) / m.sum()
    assert abs(loss.item() - expect.item()) < 1e-5


def test_decode_rows_noise_text_not_audio(batch):
    x0, ids, c = batch
    net = Spy(StandIn(D, A + L, V))
    training_loss(net, x0, ids, None, c, cfg_only(decoder_prob=1.0, decoder_p_mean=20.0))
    assert torch.allclose(net.calls[0]["x"][:, A:, :D], x0, atol=1e-5)
    big = torch.randn(64, L, D)
    training_loss(net, big, torch.zeros(64, L, dtype=torch.long), None, torch.randn(64, A, D),
                  cfg_only(decoder_prob=1.0, decoder_p_mean=-20.0, decoder_noise_scale=3.0))
    assert abs(net.calls[1]["x"][:, A:, :D].std().item() - 3.0) < 0.2


def test_gradient_reaches_cond_unless_dropped(batch):
    x0, ids, c = batch
    cg = c.clone().requires_grad_()
    loss, _ = training_loss(StandIn(D, A + L, V), x0, ids, None, cg, FlowConfig(), torch.Generator().manual_seed(5))
    loss.backward()
    assert cg.grad.abs().sum() > 0
    net, cg = Spy(StandIn(D, A + L, V)), c.clone().requires_grad_()
    loss, st = training_loss(net, x0, ids, None, cg, FlowConfig(audio_drop_prob=1.0), torch.Generator().manual_seed(6))
    loss.backward()
    assert cg.grad.abs().sum() == 0 and st["n_audio_drop"].item() == B
    assert all(k["x"][:, :A].abs().sum() == 0 for k in net.calls)


def test_text_only_and_seeded(batch):
    x0, ids, _ = batch
    net = StandIn(D, L, V)
    l1, s1 = training_loss(net, x0, ids, None, None, FlowConfig(), torch.Generator().manual_seed(7))
    l2, s2 = training_loss(net, x0, ids, None, None, FlowConfig(), torch.Generator().manual_seed(7))
    l3, _ = training_loss(net, x0, ids, None, None, FlowConfig(), torch.Generator().manual_seed(8))
    assert l1.item() == l2.item() and l1.item() != l3.item() and s1["n_audio_drop"].item() == 0


def test_with_the_real_elf_model():
    model_mod = pytest.importorskip("elf_s2t_nb.model")
    if not hasattr(model_mod, "ELF_cpu_tiny"):
        pytest.skip("elf_s2t_nb.model has no ELF_cpu_tiny yet")
    torch.manual_seed(0)
    net = model_mod.ELF_cpu_tiny(text_encoder_dim=8, max_length=6, hidden_size=32, depth=1, num_heads=2,
                                 vocab_size=13)
    x0, ids, c = torch.randn(8, 4, 8), torch.randint(0, 13, (8, 4)), torch.randn(8, 2, 8, requires_grad=True)
    loss, st = training_loss(net, x0, ids, None, c, FlowConfig(decoder_prob=0.5), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and st["n_decode"].item() > 0 and c.grad.abs().sum() > 0
