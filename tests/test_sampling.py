"""Tests of the exported `sampling` module: grids, steps, audio CFG, decoding, and the sampler against an oracle."""
import pytest
import torch
from torch import nn

from elf_s2t_nb.core import SampleConfig, UserError
from elf_s2t_nb.flow import restore_cond
from elf_s2t_nb.sampling import (SampleError, churn, cut_at_eos, decode_ids, euler_step, guided_xv, sample,
                                 time_grid)

A, L, D = 2, 3, 4


class Oracle(nn.Module):
    "x_hat = p + c on the text slots, c = mean audio prefix over both halves; decode logits = -distance to a table."
    def __init__(self, V=7, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.p, self.table, self.calls = torch.randn(L, D, generator=g), torch.randn(V, D, generator=g), []

    def forward(self, x, t, sc_cfg_scale=None, decoder_mode=None, logits_rows=None):
        self.calls.append(dict(x=x.clone(), t=t.clone(), w=sc_cfg_scale.clone(), mode=decoder_mode))
        c = (x[:, :A, :D] + x[:, :A, D:]).mean(1, keepdim=True) / 2
        logits = None if decoder_mode is None else -torch.cdist(x[:, :, :D], self.table[None])
        return torch.cat([x[:, :A, :D], self.p + c], 1), logits


@pytest.fixture
def cond():
    return torch.randn(3, A, D, generator=torch.Generator().manual_seed(5))


def test_time_grids():
    assert torch.allclose(time_grid(4, "uniform"), torch.tensor([0, 0.25, 0.5, 0.75, 1]))
    grids = torch.stack([time_grid(16, gen=torch.Generator().manual_seed(i)) for i in range(200)])
    assert (grids[:, 0] == 0).all() and (grids[:, -1] == 1).all() and (grids.diff(dim=1) >= 0).all()
    inner = grids[:, 1:-1]
    assert abs(inner.median().item() - torch.sigmoid(torch.tensor(-1.5)).item()) < 0.02   # training's t distribution
    assert not torch.equal(grids[0], grids[1])                                              # redrawn per batch
    assert torch.equal(time_grid(16, gen=torch.Generator().manual_seed(3)), grids[3])       # seeded
    with pytest.raises(SampleError, match="unknown time grid"):
        time_grid(4, "karras")
    with pytest.raises(UserError, match="at least 1 step"):
        time_grid(0)


def test_euler_and_churn_values():
    z, v, e = torch.ones(1, 3, 2), torch.full((1, 3, 2), 2.0), torch.full((1, 3, 2), -1.0)
    assert torch.allclose(euler_step(z, v, 0.2, 0.7), torch.full((1, 3, 2), 2.0))
    zb, tb = churn(z, 0.5, 0.7, 2.0, e, None)                   # alpha = 1 - 2 * 0.2 = 0.6
    assert abs(tb - 0.3) < 1e-9 and torch.allclose(zb, torch.full((1, 3, 2), 0.6 - 0.4 * 2))
    c = torch.full((1, 1, 2), 7.0)
    zb, _ = churn(z, 0.5, 0.7, 2.0, e, c)
    assert torch.equal(zb[:, :1], c)
    assert churn(z, 0.1, 0.9, 5.0, e, None)[1] == 0.0          # alpha clipped at 0
    zb, tb = churn(z, 0.5, 0.7, 0.0, e, None)
    assert tb == 0.5 and torch.equal(zb, z)


def test_guided_xv_cfg_on_both_halves(cond):
    orc = Oracle()
    z, xp = restore_cond(torch.randn(3, A + L, D), cond), restore_cond(torch.zeros(3, A + L, D), cond)
    x, v = guided_xv(orc, z, xp, 0.4, cond, cfg_scale=3.0, sc_cfg_scale=2.5)
    cm = cond.mean(1, keepdim=True)
    assert torch.allclose(x[:, A:], orc.p + 3.0 * cm, atol=1e-5)      # p + (w+1)/2 c if x_prev's prefix stayed
    assert torch.allclose(v[:, A:], (orc.p + 3.0 * cm - z[:, A:]) / 0.6, atol=1e-5)
    assert torch.equal(x[:, :A], cond) and v[:, :A].abs().sum() == 0
    (call,) = orc.calls
    assert call["x"].shape[0] == 6 and call["x"][3:, :A].abs().sum() == 0 and (call["w"] == 2.5).all()


def test_decode_and_cut(cond):
    orc = Oracle()
    want = torch.tensor([[4, 0, 6], [1, 1, 2], [3, 5, 0]])
    z = restore_cond(torch.cat([torch.zeros(3, A, D), orc.table[want] + 0.01], 1), cond)
    assert torch.equal(decode_ids(orc, z, cond, 1.5), want)
    call = orc.calls[-1]
    assert torch.equal(call["mode"], torch.ones(3)) and torch.equal(call["t"], torch.ones(3))
    assert torch.equal(call["x"][:, :A, D:], cond) and call["x"][:, A:, D:].abs().sum() == 0
    assert cut_at_eos(want, 0) == [[4], [1, 1, 2], [3, 5]]


def test_sample_ode_lands_on_guided_prediction(cond):
    orc = Oracle()
    out = sample(orc, cond, L, SampleConfig(steps=6, cfg_scale=2.0, sc_cfg_scale=4.0), D, record=True)
    target = orc.p + 2.0 * cond.mean(1, keepdim=True)
    assert torch.allclose(out.x_final, target, atol=1e-5)
    steps = [k for k in orc.calls if k["mode"] is None]
    assert len(steps) == 6 and all((k["w"] == 4.0).all() for k in orc.calls)
    assert torch.allclose(steps[2]["x"][:3, A:, D:], target, atol=1e-5)   # guided x_hat feeds self-conditioning
    assert torch.equal(torch.stack([k["t"][0] for k in steps]), out.times[:-1])
    assert out.trajectory.shape == (6, 3, L) and out.x_hats.shape == (6, 3, L, D)
    assert torch.equal(out.ids, (-torch.cdist(target, orc.table[None])).argmax(-1))


def test_sample_sde_and_seeds(cond):
    orc = Oracle()
    sde = sample(orc, cond, L, SampleConfig(method="sde", steps=5, sde_gamma=1.5, seed=2), D)
    ts = [k["t"][0].item() for k in orc.calls if k["mode"] is None]
    assert all(tb < tg for tb, tg in zip(ts[1:4], sde.times[1:4].tolist()))   # churn evaluates earlier
    assert abs(ts[-1] - sde.times[-2].item()) < 1e-7                             # final step is plain Euler
    ode = sample(orc, cond, L, SampleConfig(method="ode", steps=5, seed=2), D)
    sde0 = sample(orc, cond, L, SampleConfig(method="sde", steps=5, sde_gamma=0.0, seed=2), D)
    assert torch.equal(ode.x_final, sde0.x_final)


def test_sample_real_model_seeded_and_unconditional():
    model_mod = pytest.importorskip("elf_s2t_nb.model")
    torch.manual_seed(0)
    net = model_mod.ELF_cpu_tiny(text_encoder_dim=8, max_length=7, hidden_size=32, depth=1, num_heads=2, vocab_size=13)
    with torch.no_grad():                           # the flow head starts at zero: move it so outputs depend on z
        net.final_layer.linear.weight.normal_(0, 0.1)
    c = torch.randn(2, 3, 8)
    a = sample(net, c, 4, SampleConfig(steps=4, seed=1))
    b = sample(net, c, 4, SampleConfig(steps=4, seed=1))
    d = sample(net, c, 4, SampleConfig(steps=4, seed=2))
    assert torch.equal(a.x_final, b.x_final) and not torch.equal(a.x_final, d.x_final)
    assert a.ids.shape == (2, 4) and a.ids.max() < 13
    u = sample(net, None, 7, SampleConfig(steps=3), latent_dim=8, batch_size=5)
    assert u.ids.shape == (5, 7) and u.x_final.shape == (5, 7, 8)
    with pytest.raises(SampleError, match="set n_text=4"):
        sample(net, c, 5, SampleConfig(steps=2))
    with pytest.raises(SampleError, match="unknown sampling method"):
        sample(net, c, 4, SampleConfig(method="heun"))
