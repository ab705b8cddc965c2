"""The sampler (`sampling`, taught and unit-tested in 11_sampling) driving the real ELF network (`model`)."""
import pytest
import torch

from elf_s2t_nb.core import SampleConfig
from elf_s2t_nb.model import ELF_cpu_tiny
from elf_s2t_nb.sampling import SampleError, sample


def test_sample_real_model_seeded_and_unconditional():
    torch.manual_seed(0)
    net = ELF_cpu_tiny(text_encoder_dim=8, max_length=7, hidden_size=32, depth=1, num_heads=2, vocab_size=13)
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
