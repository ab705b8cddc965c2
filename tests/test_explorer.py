"""Tests of the exported `explorer` module: the static figure and the widget, driven from code, on a tiny untrained model."""
import numpy as np
import pytest
import torch

from elf_s2t_nb.core import SampleConfig
from elf_s2t_nb.evaluate import EvalError
from elf_s2t_nb.explorer import Explorer, explore, plot_trajectory, step_html, trajectory_texts, utterances, wav_bytes


class FakeTextEncoder:
    dim, eos_id = 8, 0
    def decode(self, ids):
        out = []
        for row in torch.as_tensor(ids).tolist():
            row = row[:row.index(0)] if 0 in row else row
            out.append(" ".join(f"w{i}" for i in row))
        return out


@pytest.fixture(scope="module")
def setup():
    from elf_s2t_nb.model import ELF_cpu_tiny
    from elf_s2t_nb.projector import AudioProjector
    torch.manual_seed(0)
    model = (ELF_cpu_tiny(text_encoder_dim=8, max_length=4 + 5, hidden_size=32, depth=1, num_heads=2, vocab_size=11).eval(),
             AudioProjector(6, 8, stack=2, n_slots=4).eval())
    g = torch.Generator().manual_seed(1)
    batches = [dict(features=torch.randn(2, 8, 6, generator=g), feat_lens=torch.tensor([8, 6]), ids=torch.randint(1, 11, (2, 5), generator=g),
                    text=["w1 w2", "w3"], uid=["u0", "u1"])]
    return model, batches


def test_utterances_cut_features_and_attach_audio(setup):
    _, batches = setup
    u = utterances(batches, [np.zeros(100), np.ones(50)])
    assert [x["uid"] for x in u] == ["u0", "u1"] and u[1]["features"].shape == (6, 6) and u[1]["audio"].dtype == np.float32
    with pytest.raises(EvalError, match="one clip per utterance"): utterances(batches, [np.zeros(3)])


def test_explorer_runs_steps_and_caches(setup):
    model, batches = setup
    ex = Explorer(model, utterances(batches), FakeTextEncoder(), SampleConfig(steps=3))
    r = ex.run(1)
    assert len(r["texts"]) == 4 and len(r["ts"]) == 4 and r["texts"][-1] == r["hyp"] and r["ref"] == "w3"
    assert r["ts"][0] == 0.0 and r["ts"][-1] == 1.0 and ex.run(1) is r
    ex.run(1, 4.0); assert set(ex.cache) == {(1, 2.0), (1, 4.0)}
    assert len(trajectory_texts(torch.zeros(3, 2, 5, dtype=torch.long), FakeTextEncoder())) == 3


def test_static_path_is_a_figure(setup):
    import matplotlib.figure
    model, batches = setup
    fig = explore(model, batches, FakeTextEncoder(), SampleConfig(steps=2), static=True)
    assert isinstance(fig, matplotlib.figure.Figure)
    assert isinstance(plot_trajectory(["a", "a b"], [0.0, 1.0], "a b"), matplotlib.figure.Figure)


def test_widget_is_built_and_follows_its_controls(setup):
    import ipywidgets as W
    model, batches = setup
    box = explore(model, batches, FakeTextEncoder(), SampleConfig(steps=3), audios=[np.zeros(800), np.zeros(400)], static=False)
    (pick, scale), player, step, html = box.children[0].children, box.children[1], box.children[2], box.children[3]
    assert isinstance(box, W.VBox) and isinstance(player, W.Audio) and player.value[:4] == b"RIFF"
    assert step.max == 3 and step.value == 3 and "final output" in html.value and "reference: w1 w2" in html.value
    step.value = 0
    assert "step 1 of 3" in html.value
    pick.value = 1
    assert "reference: w3" in html.value and step.value == step.max
    scale.value = 4.0
    assert (1, 4.0) in box.explorer.cache


def test_helpers():
    assert wav_bytes(np.zeros(160))[:4] == b"RIFF"
    r = dict(texts=["a <b>", "a"], ts=[0.0, 1.0], hyp="a", ref="a")
    assert "&lt;b&gt;" in step_html(r, 0) and "final output" in step_html(r, 1)
