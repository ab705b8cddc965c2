"""Tests of the exported `latents` module as users import it (offline: MiniLM weights from the package, T5 random)."""
import warnings
import pytest
import torch
from elf_s2t_nb.core import ConfigError, LatentConfig
from elf_s2t_nb.latents import LatentCache, TextEncoder, detokenize, nearest_tokens, token_centroids

TEXTS = ["In the beginning God created the heavens and the earth.", "Let there be light.",
         "He didn't go to the sea.", "Jesus wept, and they were sixty-five."]


@pytest.fixture(scope="module")
def minilm():
    enc = TextEncoder("minilm", max_len=24)
    enc.estimate_latent_std(TEXTS)
    return enc


def test_minilm_ids_and_latents(minilm):
    ids, x0 = minilm.encode(TEXTS)
    assert ids.shape == (4, 24) and ids.dtype == torch.long and x0.shape == (4, 24, 384) and x0.dtype == torch.float32
    words = minilm.tokenizer(TEXTS[1], add_special_tokens=False)["input_ids"]
    assert ids[1, :len(words)].tolist() == words and (ids[1, len(words):] == minilm.eos_id).all()
    assert minilm.eos_id == minilm.tokenizer.sep_token_id and (ids != minilm.tokenizer.cls_token_id).all()
    assert abs(x0.pow(2).mean().sqrt().item() - 1.0) < 1e-3          # std estimated on these very texts
    # a text's latents do not depend on the batch it is in (padding is never attended to)
    assert torch.allclose(minilm.encode(TEXTS[1:2])[1][0], x0[1], atol=1e-4)
    assert minilm.decode(ids) == [t.lower() for t in TEXTS]


def test_truncation_is_counted_and_warned():
    enc = TextEncoder("minilm", max_len=6, latent_std=1.0)
    with pytest.warns(UserWarning, match="truncated"):
        ids, _ = enc.encode(["one two three four five six seven", "short"])
    assert enc.n_truncated == 1 and ids[0, -1] == enc.eos_id and (ids[0, :5] != enc.eos_id).all()


def test_bad_input():
    with pytest.raises(ConfigError, match="latent_std is not set"):
        TextEncoder("minilm").encode(["x"])
    with pytest.raises(ConfigError, match="max_len"):
        TextEncoder("minilm", max_len=1)
    with pytest.raises(ValueError, match="cannot load text encoder"):
        TextEncoder("/definitely/not/a/model")


def test_from_config_stores_std():
    cfg = LatentConfig(encoder="minilm", max_len=16)
    enc = TextEncoder.from_config(cfg, TEXTS)
    assert cfg.latent_std == enc.latent_std and 0.05 < cfg.latent_std < 5


def test_t5_random_shape_offline():
    enc = TextEncoder("t5-small-random", max_len=16)
    assert (enc.dim, enc.eos_id, enc.prefix_id, enc.id) == (512, 1, None, "t5-small-random-s0")
    std = enc.estimate_latent_std(TEXTS)
    ids, x0 = enc.encode(TEXTS[:2])
    assert x0.shape == (2, 16, 512) and std > 0 and (ids[1, 5:] == 1).all()
    # same seed, same weights
    again = TextEncoder("t5-small-random", max_len=16, latent_std=std)
    assert torch.equal(again.encode(TEXTS[:2])[1], x0)


def test_cache_hits_and_damage(minilm, tmp_path):
    cache = LatentCache(minilm, root=tmp_path)
    ids, a = cache.get(TEXTS)
    _, b = cache.get(TEXTS)
    assert (cache.misses, cache.hits) == (4, 4) and torch.equal(a, b)
    assert torch.allclose(a, minilm.encode(TEXTS)[1], atol=0.05)
    cache.path(TEXTS[2]).write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="damaged"):
        _, c = cache.get(TEXTS)
    # the damaged entry is re-encoded in a batch of other texts: equal up to the batch's float rounding
    assert cache.damaged == 1 and torch.allclose(c, a, atol=0.05)
    other = LatentCache(TextEncoder("minilm", max_len=8, latent_std=1.0), root=tmp_path)   # L is part of the key
    assert other.path(TEXTS[0]) != cache.path(TEXTS[0])


def test_nearest_tokens_recovers_clean_ids(minilm):
    ids, x0 = minilm.encode(TEXTS)
    tok, cents = token_centroids(ids, x0)
    assert (nearest_tokens(x0, tok, cents) == ids).float().mean() > 0.8


def test_detokenize():
    assert detokenize('he said, " don \' t go, " sixty - five') == 'he said, "don\'t go," sixty-five'
