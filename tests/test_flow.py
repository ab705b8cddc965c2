"""The flow-matching loss (`flow`, taught and unit-tested in 09_flow) with the real ELF network (`model`)."""
import torch

from elf_s2t_nb import model as model_mod
from elf_s2t_nb.core import FlowConfig
from elf_s2t_nb.flow import training_loss


def test_with_the_real_elf_model():
    torch.manual_seed(0)
    net = model_mod.ELF_cpu_tiny(text_encoder_dim=8, max_length=6, hidden_size=32, depth=1, num_heads=2,
                                 vocab_size=13)
    x0, ids, c = torch.randn(8, 4, 8), torch.randint(0, 13, (8, 4)), torch.randn(8, 2, 8, requires_grad=True)
    loss, st = training_loss(net, x0, ids, None, c, FlowConfig(decoder_prob=0.5), torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and st["n_decode"].item() > 0 and c.grad.abs().sum() > 0
