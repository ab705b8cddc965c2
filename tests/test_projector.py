"""Tests of the exported audio projector (`elf_s2t_nb.projector`) as users import it."""
import warnings

import pytest
import torch

from elf_s2t_nb.core import ProjectorConfig, UserError, get_preset
from elf_s2t_nb.projector import (FRAME_SECONDS, AudioProjector, AudioTruncationWarning, ProjectorInputError,
                                  n_slots_for, stack_frames)


def _rms(v): return v.pow(2).mean(-1).sqrt()


def test_n_slots_for_counts_partial_slots():
    assert [n_slots_for(n, 4) for n in (0, 1, 4, 5, 1500)] == [0, 1, 1, 2, 375]
    assert n_slots_for(torch.tensor([7, 8, 9]), 4).tolist() == [2, 2, 3]
    assert FRAME_SECONDS == 0.02


def test_stacking_order_lengths_and_padding():
    feats = torch.arange(10.).view(1, 10, 1).repeat(2, 1, 1)   # frame i holds the value i
    feats[1, 5:] = -1.0                                          # padding frames of clip 1
    x, mask = stack_frames(feats, torch.tensor([10, 5]), stack=3, n_slots=5)
    assert x.shape == (2, 5, 3)
    assert x[0, :4].tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9, 0, 0]]   # T padded 10 -> 12
    assert x[1, :2].tolist() == [[0, 1, 2], [3, 4, 0]]                        # frame 5.. is padding: zeroed
    assert mask.tolist() == [[True] * 4 + [False], [True, True, False, False, False]]
    assert (x[~mask] == 0).all()


def test_truncation_warns_and_keeps_first_slots():
    feats = torch.randn(2, 40, 3)
    with pytest.warns(AudioTruncationWarning, match="n_slots=4"):
        x, mask = stack_frames(feats, torch.tensor([40, 8]), stack=4, n_slots=4)
    assert torch.equal(x[0], feats[0, :16].reshape(4, 12)) and mask.sum(1).tolist() == [4, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # padding frames beyond every length never warn
        stack_frames(feats, torch.tensor([16, 3]), stack=4, n_slots=4)


def test_projector_output_scale_mask_and_invariance():
    torch.manual_seed(0)
    proj = AudioProjector(d_whisper=16, latent_dim=8, stack=4, n_slots=10, scale=0.7)
    feats, lengths = torch.randn(3, 30, 16) * torch.exp(torch.randn(16)), torch.tensor([30, 13, 1])
    slots, mask = proj(feats, lengths)
    assert slots.shape == (3, 10, 8) and mask.sum(1).tolist() == [8, 4, 1]
    assert torch.allclose(_rms(slots)[mask], torch.full((13,), 0.7), atol=1e-4)
    assert (slots[~mask] == 0).all()
    with torch.no_grad():
        assert torch.allclose(proj(5 * feats, lengths)[0], slots, atol=1e-4)   # feature scale does not matter
        x, _ = stack_frames(feats, lengths, 4, 10)
        raw = proj.proj(x)
        assert torch.allclose(slots[mask], (0.7 * raw / _rms(raw)[..., None])[mask], atol=1e-4)


def test_projector_gradients_and_dtype():
    proj = AudioProjector(d_whisper=8, latent_dim=4, stack=2, n_slots=6)
    feats = torch.randn(2, 9, 8, dtype=torch.float16).float().requires_grad_()
    slots, mask = proj(feats.half(), torch.tensor([9, 4]))           # fp16 cached features are accepted
    assert slots.dtype == torch.float32
    (slots * torch.randn_like(slots)).sum().backward()
    assert proj.proj.weight.grad.abs().sum() > 0
    assert feats.grad[1, 4:].abs().sum() == 0 and feats.grad[1, :4].abs().sum() > 0


def test_from_config_and_errors():
    cfg = get_preset("cpu-tiny").projector
    proj = AudioProjector.from_config(cfg, d_whisper=384, latent_dim=384)
    assert (proj.stack, proj.n_slots, proj.scale) == (cfg.stack, cfg.n_slots, cfg.scale)
    assert proj.proj.in_features == cfg.stack * 384
    p2 = AudioProjector.from_config(ProjectorConfig(stack=2, n_slots=3, scale=2.0), 4, 4)
    assert p2(torch.randn(1, 6, 4))[1].tolist() == [[True] * 3]
    with pytest.raises(ProjectorInputError, match="d_whisper=384"):
        proj(torch.randn(1, 8, 512))
    with pytest.raises(ProjectorInputError, match=r"\[0, 8\]"):
        proj(torch.randn(2, 8, 384), torch.tensor([9, 2]))
    assert issubclass(ProjectorInputError, UserError)
