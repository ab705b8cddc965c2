"""Learning proof: a tiny ELF + the audio projector, trained with `training_loss`, samples its (audio -> text) pairs back exactly.

Real MiniLM latents (last hidden state / global std, [SEP] = EOS padding) when the offline MiniLM package is
installed; otherwise a random latent table. The decode head scores only the word pieces the sentences use.
"""
import copy
import os
import time

import pytest
import torch
from torch import nn

from elf_s2t_nb.core import FlowConfig, SampleConfig, seed_everything
from elf_s2t_nb.flow import training_loss
from elf_s2t_nb.sampling import cut_at_eos, sample

SENTS = ["a cat sat", "dogs ran home", "birds sing at dawn", "we read books"]
L_TXT, A_AUD, D_W, STACK, D = 6, 4, 16, 2, 384
MAX_STEPS, CHECK_EVERY = 1200, 25


def minilm_targets():
    "(x0 (N, L, 384), compact ids (N, L), eos id) from the project's MiniLM TextEncoder, or None when it is absent."
    from elf_s2t_nb.core import UserError
    from elf_s2t_nb.latents import TextEncoder
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        enc = TextEncoder("minilm", max_len=L_TXT)
    except UserError:
        return None
    enc.estimate_latent_std(SENTS)
    ids, x0 = enc.encode(SENTS)
    used = ids.unique()                   # the decode head scores only the word pieces these sentences use
    return x0, torch.searchsorted(used, ids), int(torch.searchsorted(used, torch.tensor(enc.eos_id)))


def random_targets():
    vocab = ["[SEP]"] + sorted({w for s in SENTS for w in s.split()})
    ids = torch.tensor([[vocab.index(w) for w in s.split()] + [0] * (L_TXT - len(s.split())) for s in SENTS])
    return torch.randn(len(vocab), D, generator=torch.Generator().manual_seed(0))[ids], ids, 0


@pytest.fixture
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)   # a tiny model is fastest on one thread, more so on a shared machine
    yield
    torch.set_num_threads(n)


def test_tiny_elf_samples_its_pairs_back_exactly(one_thread):
    from elf_s2t_nb.model import ELF_cpu_tiny
    from elf_s2t_nb.projector import AudioProjector
    x0_all, ids_all, eos = minilm_targets() or random_targets()
    feats = torch.randn(len(SENTS), STACK * A_AUD, D_W, generator=torch.Generator().manual_seed(0))  # 'Whisper' frames
    g = seed_everything(0)
    model = ELF_cpu_tiny(text_encoder_dim=D, max_length=A_AUD + L_TXT, hidden_size=64, depth=2, num_heads=2,
                         vocab_size=int(ids_all.max()) + 1)
    proj = AudioProjector(D_W, D, stack=STACK, n_slots=A_AUD)
    ema, params = copy.deepcopy(nn.ModuleList([model, proj])), [*model.parameters(), *proj.parameters()]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.0)
    x0, ids, fb = x0_all.repeat(6, 1, 1), ids_all.repeat(6, 1), feats.repeat(6, 1, 1)
    want, t0, exact, losses = cut_at_eos(ids_all, eos), time.perf_counter(), 0, []
    for step in range(1, MAX_STEPS + 1):
        loss, _ = training_loss(model, x0, ids, None, proj(fb)[0], FlowConfig(), g)
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        with torch.no_grad():
            for e, p in zip(ema.parameters(), params):
                e.lerp_(p, 0.02)
        if step % CHECK_EVERY == 0:
            exact = len(SENTS)
            for s in range(3):                # every sentence exact with 3 sampling seeds (default sampler, CFG 2)
                with torch.no_grad():
                    out = sample(ema[0], ema[1](feats)[0], L_TXT, SampleConfig(seed=10 * step + s), D)
                exact = min(exact, sum(a == b for a, b in zip(cut_at_eos(out.ids, eos), want)))
            if exact == len(SENTS):
                break
    secs = time.perf_counter() - t0
    print(f"learning proof: {exact}/{len(SENTS)} exact after {step} steps, {secs:.1f} s")
    assert exact == len(SENTS), f"only {exact}/{len(SENTS)} sampled back exactly after {MAX_STEPS} steps"
    assert sum(losses[-20:]) / 20 < 0.5 * sum(losses[:20]) / 20
