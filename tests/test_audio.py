"""`audio` (taught in 01_audio) beyond its notebook: every bad input a user can hand it, resampling at each common rate,
write/read round trips, and the espeak-ng voices and errors."""
import sys

import numpy as np
import pytest
import soundfile as sf

from elf_s2t_nb.audio import (AudioError, AudioFileNotFoundError, SAMPLE_RATE, TTSError, list_variants, list_voices,
                              load_audio, same_speech, synthesize, write_audio)
from elf_s2t_nb.core import UserError


def tone(sr=SAMPLE_RATE, seconds=1.0, hz=440.0, amp=0.5):
    t = np.arange(int(sr * seconds)) / sr
    return (amp * np.sin(2 * np.pi * hz * t)).astype(np.float32)


# --- bad inputs: one clear error each, naming the file --------------------------------------------------------
def test_missing_file(tmp_path):
    p = tmp_path / "nope.wav"
    with pytest.raises(AudioFileNotFoundError, match=r"not found: .*nope\.wav") as e:
        load_audio(p)
    assert isinstance(e.value, FileNotFoundError) and isinstance(e.value, UserError)


def test_not_audio(tmp_path):
    p = tmp_path / "text.wav"
    p.write_bytes(b"RIFF but not really a wave file" * 20)
    with pytest.raises(AudioError, match=r"text\.wav: cannot decode"):
        load_audio(p)
    with pytest.raises(AudioError, match="is not a file"):
        load_audio(tmp_path)


def test_empty(tmp_path):
    p = tmp_path / "empty.wav"
    sf.write(p, np.zeros((0, 1), np.float32), 16_000)
    with pytest.raises(AudioError, match=r"empty\.wav: the audio is empty"):
        load_audio(p)
    with pytest.raises(AudioError, match="array: the audio is empty"):
        load_audio(np.zeros(0, np.float32), sr=16_000)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(tmp_path, bad):
    x = tone()
    x[123] = bad
    with pytest.raises(AudioError, match="1 samples are NaN or infinite .first at sample 123"):
        load_audio(x, sr=SAMPLE_RATE, name="clip-3")
    p = tmp_path / "nan.wav"
    sf.write(p, x, SAMPLE_RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav: 1 samples are NaN"):
        load_audio(p)


@pytest.mark.parametrize("sr, msg", [(None, "no sample rate"), (0, "outside"), (-16000, "outside"),
                                     (16000.5, "not a whole number"), ("16k", "not a whole number"),
                                     (float("nan"), "not a whole number"), (10**7, "outside"), (True, "not a whole")])
def test_bad_rate(sr, msg):
    with pytest.raises(AudioError, match=msg):
        load_audio(tone(), sr=sr)


def test_rate_given_for_file_must_match(tmp_path):
    p = write_audio(tmp_path / "a.wav", tone(22_050), sr=22_050)
    assert load_audio(p, sr=22_050).shape == (16_000,)
    with pytest.raises(AudioError, match="file says 22050 Hz"):
        load_audio(p, sr=16_000)


def test_bad_array_shapes_and_dtypes():
    with pytest.raises(AudioError, match="shape"):
        load_audio(np.zeros((2, 2, 4000)), sr=16_000)
    with pytest.raises(AudioError, match="cannot tell channels"):
        load_audio(np.zeros((4000, 4000)), sr=16_000)
    with pytest.raises(AudioError, match="dtype complex"):
        load_audio(np.zeros(4000, np.complex64), sr=16_000)


# --- conversions ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("sr", [8_000, 16_000, 22_050, 44_100, 48_000])
def test_resample_keeps_duration_and_pitch(sr):
    x = load_audio(tone(sr, 1.0, hz=1000.0), sr=sr)
    assert x.dtype == np.float32 and x.shape == (16_000,)
    assert abs(np.argmax(np.abs(np.fft.rfft(x))) * SAMPLE_RATE / len(x) - 1000) <= 1
    assert abs(np.abs(x[1000:-1000]).max() - 0.5) < 0.01


def test_int_pcm_and_stereo(tmp_path):
    left, right = tone(amp=0.5), tone(amp=0.25)
    pcm = (np.stack([left, right], 1) * 32768).astype(np.int16)          # (n, 2) int16
    np.testing.assert_allclose(load_audio(pcm, sr=SAMPLE_RATE), (left + right) / 2, atol=1e-4)
    np.testing.assert_allclose(load_audio(pcm.T, sr=SAMPLE_RATE), (left + right) / 2, atol=1e-4)  # (2, n)
    p = tmp_path / "stereo.wav"
    sf.write(p, pcm, SAMPLE_RATE)
    np.testing.assert_allclose(load_audio(p), (left + right) / 2, atol=1e-4)


def test_write_round_trip_is_atomic(tmp_path):
    x = tone()
    for name in ("a.wav", "a.flac"):
        np.testing.assert_allclose(load_audio(write_audio(tmp_path / name, x)), x, atol=2 ** -15)
    np.testing.assert_array_equal(load_audio(write_audio(tmp_path / "f.wav", x, subtype="FLOAT")), x)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.flac", "a.wav", "f.wav"]   # no temp files
    with pytest.raises(AudioError, match="use a .wav or .flac"):
        write_audio(tmp_path / "a.mp3", x)
    with pytest.warns(UserWarning, match="clipped"):
        write_audio(tmp_path / "loud.wav", 3 * x)


# --- text-to-speech ------------------------------------------------------------------------------------------
def test_synthesize_is_deterministic_and_varies_with_arguments():
    a = synthesize("Hello world, this is a test.")
    synthesize("Etwas ganz anderes.", voice="de+m2")
    b = synthesize("Hello world, this is a test.")
    assert a.dtype == np.float32 and a.ndim == 1 and 1.0 < len(a) / SAMPLE_RATE < 4.0
    assert same_speech(a, b)
    for other in (synthesize("Hello world, this is a test.", voice="en-us+m3"),
                  synthesize("Hello world, this is a test.", rate=250),
                  synthesize("Hello world, this is a test.", pitch=80)):
        assert len(other) != len(a) or not np.array_equal(other, a)
    assert len(synthesize("Hello world, this is a test.", rate=250)) < len(a)


@pytest.mark.parametrize("voice", ["en-us+m3", "en+f2", "de", "de+m2", "fr+f3"])
def test_voice_variants_speak(voice):
    x = synthesize("un deux trois" if voice.startswith("fr") else "eins zwei drei", voice=voice)
    assert len(x) > 0.3 * SAMPLE_RATE and np.abs(x).max() > 0.05


def test_tts_errors():
    with pytest.raises(TTSError, match="unknown espeak-ng voice 'zz-top'"):
        synthesize("hi", voice="zz-top")
    with pytest.raises(TTSError, match="unknown espeak-ng variant 'm99'"):
        synthesize("hi", voice="en-us+m99")
    with pytest.raises(TTSError, match="empty"):
        synthesize("")
    with pytest.raises(TTSError, match="pitch=150"):
        synthesize("hi", pitch=150)


def test_missing_espeak_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)   # makes `import espeakng_loader` fail
    with pytest.raises(TTSError, match="pip install espeakng-loader"):
        synthesize("hello there")


def test_list_voices():
    en = list_voices("en")
    assert {"en", "en-us", "en+m3", "en+f2"} <= set(en) and not any(v.startswith("de") for v in en)
    assert {"de", "de+m2"} <= set(list_voices("de")) and "fr+f3" in list_voices("fr")
    assert {"m1", "f1", "klatt"} <= set(list_variants())
    assert {"en-us", "de", "fr"} <= set(list_voices())
    with pytest.raises(TTSError, match="no espeak-ng voice"):
        list_voices("xx")
