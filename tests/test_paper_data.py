"""Tests of the paper-scale loaders on small local datasets in the LibriSpeech and CoVoST 2 schemas (offline)."""
import io
import numpy as np
import pytest
import soundfile as sf
from elf_s2t_nb.core import ConfigError, DataConfig
from elf_s2t_nb.data import DataError
from elf_s2t_nb.paper_data import HFSpeech, decode_audio, hf_spec, write_hub_like


def _flac(seconds, sr=16000, f=220.0):
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * f * np.arange(int(seconds * sr)) / sr)).astype(np.float32), sr, format="FLAC")
    return buf.getvalue()


def test_covost2_schema_streams_and_counts_bad_rows(tmp_path, capsys):
    rows = {"client_id": ["a", "b", "c", "d"], "file": ["0.mp3", "1.mp3", "2.mp3", "3.mp3"],
            "audio": [{"bytes": _flac(1.0), "path": "0.mp3"}, {"bytes": _flac(0.8, 48000), "path": "1.mp3"},
                      {"bytes": b"not audio", "path": "2.mp3"}, {"bytes": _flac(1.0), "path": "3.mp3"}],
            "sentence": ["eins zwei drei", "vier fünf", "sechs", "sieben"], "translation": ["one two three", "four five", "six", "  "],
            "id": ["c0", "c1", "c2", "c3"]}
    write_hub_like(tmp_path, "de_en", "train", rows)
    src = HFSpeech(DataConfig(source="covost2", task="s2tt", src_lang="de", n_train=0, min_words=1), "train", name=str(tmp_path))
    ex = list(src)
    assert [e["uid"] for e in ex] == ["c0", "c1"] and ex[1]["audio"].dtype == np.float32
    assert abs(ex[1]["seconds"] - 0.8) < 1e-3                                    # 48 kHz resampled to 16 kHz
    assert src.skips == {"audio failed to decode": 1, "empty transcript": 1}
    assert "skipped 1 audio failed to decode, 1 empty transcript" in capsys.readouterr().out


def test_librispeech_schema_lowercases_and_limits(tmp_path):
    write_hub_like(tmp_path, "other", "train.500", {"file": ["a", "b"], "audio": [{"bytes": _flac(1), "path": "a"}] * 2,
                   "text": ["HELLO THERE WORLD", "GOOD MORNING TO YOU"], "speaker_id": [1, 2], "chapter_id": [1, 2], "id": ["1-1-1", "2-2-2"]})
    ex = list(HFSpeech(DataConfig(source="librispeech", n_train=1), "train", subset="other", name=str(tmp_path), verbose=False))
    assert [e["text"] for e in ex] == ["hello there world"]


def test_bad_inputs(tmp_path):
    write_hub_like(tmp_path, "clean", "test", {"audio": [{"bytes": _flac(1), "path": "a"}], "transcript": ["x"]})
    with pytest.raises(DataError, match=r"has no column \['text'\]; its columns are"):
        list(HFSpeech(DataConfig(source="librispeech"), "test", name=str(tmp_path)))
    with pytest.raises(DataError, match="no parquet files"):
        list(HFSpeech(DataConfig(source="librispeech"), "dev", name=str(tmp_path)))
    with pytest.raises(ConfigError):
        hf_spec(DataConfig(source="synth"))
    with pytest.raises(ValueError, match="do not decode"):
        decode_audio({"bytes": b"xx", "path": None}, "row 0")
    assert hf_spec(DataConfig(source="librispeech"), "test", "all") == ("openslr/librispeech_asr", "all", ("test.clean",))


def _mp3(seconds, sr=16000, f=220.0):
    buf = io.BytesIO()
    sf.write(buf, (0.3 * np.sin(2 * np.pi * f * np.arange(int(seconds * sr)) / sr)).astype(np.float32), sr, format="MP3")
    return buf.getvalue()


def test_test_split_keeps_long_clips_and_refuses_broken_mp3(tmp_path):
    write_hub_like(tmp_path, "clean", "test", {"audio": [{"bytes": _flac(34.9), "path": "a"}, {"bytes": _flac(2), "path": "b"}],
                   "text": ["A LONG ONE", "A SHORT ONE"], "id": ["1-1-0", "1-1-1"]})
    src = HFSpeech(DataConfig(source="librispeech", n_eval=0, min_words=0, max_words=0), "test", name=str(tmp_path), verbose=False)
    ex = list(src)
    assert [len(e["audio"]) for e in ex] == [480_000, 32_000] and src.truncated == 1
    write_hub_like(tmp_path, "de_en", "test", {"audio": [{"bytes": _mp3(1.0), "path": "0.mp3"}, {"bytes": b"ID3\x03junk", "path": "1.mp3"}],
                   "sentence": ["eins", "zwei"], "translation": ["one", "two"], "id": ["c0", "c1"]})
    cv = DataConfig(source="covost2", task="s2tt", src_lang="de", n_eval=0, min_words=0)
    with pytest.raises(DataError, match=r"row 1 \(c1\): its audio bytes do not decode.*scored whole"):
        list(HFSpeech(cv, "test", name=str(tmp_path)))
    train_like = HFSpeech(cv, "test", name=str(tmp_path), strict=False, verbose=False)
    assert [e["uid"] for e in train_like] == ["c0"] and train_like.skips == {"audio failed to decode": 1}
