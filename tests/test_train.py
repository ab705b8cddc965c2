"""The training loop (`train`, taught in 14_train) with the run state it saves (`run_state`, 13_run_state) beyond the
notebooks: Muon's step size, exact resume of every part of the state, NaN and damage handling, the metrics log, stage 2
on `data`'s datasets, and two-process DDP.

Run as a script under torchrun, this file is also the worker of the two-process DDP test.
"""
import dataclasses, hashlib, json, os, subprocess, sys, time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from elf_s2t_nb.core import Config, TrainConfig, UserError
from elf_s2t_nb.run_state import CKPT_NAME, BatchStream, CheckpointError, load_checkpoint
from elf_s2t_nb.model import ElfS2T
from elf_s2t_nb.train import DivergedError, make_optimizer, read_metrics, train


# ---------------------------------------------------------------- stand-ins
class TinyNet(nn.Module):
    "Regression stand-in with 2-D, 1-D and 3-D parameters, dropout (global RNG) and input noise (the loss generator)."
    def __init__(self, d_in=8, d_h=32, p_drop=0.1, noise=0.05):
        super().__init__()
        self.inp, self.norm, self.out = nn.Linear(d_in, d_h), nn.LayerNorm(d_h), nn.Linear(d_h, 1)
        self.tok, self.drop, self.noise = nn.Parameter(torch.zeros(1, 1, d_h)), nn.Dropout(p_drop), noise
    def forward(self, batch, gen=None):
        x = batch["x"] + self.noise * torch.randn(batch["x"].shape, generator=gen)
        pred = self.out(self.drop(torch.relu(self.norm(self.inp(x)) + self.tok[0]))).squeeze(-1)
        return F.mse_loss(pred, batch["y"]), {"pred_std": pred.std().detach()}


def tiny_dataset(n=96, d_in=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x, w = torch.randn(n, d_in, generator=g), torch.randn(d_in, generator=g) / d_in**0.5
    return [{"x": x[i], "y": torch.sin(x[i] @ w)} for i in range(n)]


def tiny_cfg(steps, batch_size=16, **kw) -> Config:
    tc = dict(optimizer="muon", lr=0.02, warmup_steps=4, steps=steps, ema_decay=0.9, ckpt_every=4, log_every=2, seed=0)
    return Config(name="test", data=dataclasses.replace(Config().data, batch_size=batch_size),
                  train=TrainConfig(**{**tc, **kw}))


def fresh(seed=0, **kw):
    torch.manual_seed(seed)
    return TinyNet(**kw)


@pytest.fixture(autouse=True)
def _one_thread():
    "One intra-op thread: on a shared 2-core machine two spinning threads per process make CPU steps ~10x slower."
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def sha(p): return hashlib.sha256(Path(p).read_bytes()).hexdigest()


# ---------------------------------------------------------------- optimiser, schedule, EMA
def test_muon_step_size_matches_elf_for_kernels():
    "An (n_in, n_out) kernel must move by lr*sqrt(n_out/n_in) per unit singular value, as ELF's Muon does."
    from elf_s2t_nb.train import set_lr
    m = nn.Module(); m.kernel = nn.Parameter(torch.zeros(4, 64))  # used as x @ W: fan_in 4, fan_out 64
    m.kernel.grad = torch.randn(4, 64, generator=torch.Generator().manual_seed(0))
    opt = make_optimizer(m, TrainConfig(optimizer="muon", lr=0.01))
    set_lr(opt, 0.01); opt.step()
    rms_sv = torch.linalg.svdvals(m.kernel.detach()).mean().item()
    assert abs(rms_sv / (0.01 * (64 / 4) ** 0.5) - 1) < 0.35    # ~1 after Newton-Schulz (singular values in ~[0.7, 1.2])


# ---------------------------------------------------------------- the data order
def test_stream_with_whole_batch_dataset_and_batcher():
    class Lengths(torch.utils.data.Dataset):
        def __init__(self, n): self.n = n
        def __len__(self): return self.n
        def __getitems__(self, ix): return {"i": torch.tensor(ix)}
    batcher = lambda e: [list(range(k, k + 4)) for k in (8, 0, 4)] if e % 2 else [list(range(k, k + 4)) for k in (0, 4, 8)] + [[9]]
    s = BatchStream(Lengths(10), 4, batcher=batcher, rank=1, world_size=2); it = iter(s)
    got = [next(it)["i"].tolist() for _ in range(5)]
    assert got == [[2, 3], [6, 7], [10, 11], [10, 11], [2, 3]]    # rank 1's halves; the short batch [9] is dropped
    assert s.state_dict()["epoch"] == 1 and s.state_dict()["pos"] == 2


def test_speech_batches_from_data_py(tmp_path):
    "Stage 2 end to end on tiny tensors: data.SpeechTextDataset -> ElfS2T(ELF, AudioProjector) -> train, exact resume."
    from elf_s2t_nb import data
    from elf_s2t_nb.model import ELF_cpu_tiny
    from elf_s2t_nb.projector import AudioProjector
    g = torch.Generator().manual_seed(0)
    n, L, D, d_w = 24, 6, 16, 8
    feats = [torch.randn(int(t), d_w, generator=g) for t in torch.randint(6, 17, (n,), generator=g)]
    ds = data.SpeechTextDataset(feats, torch.randint(0, 20, (n, L), generator=g), torch.randn(n, L, D, generator=g),
                                [f"t{i}" for i in range(n)], [f"u{i}" for i in range(n)])
    def model_fn():
        torch.manual_seed(0)
        return ElfS2T(ELF_cpu_tiny(max_length=4 + L, vocab_size=20, hidden_size=32, depth=1, num_heads=2, text_encoder_dim=D),
                      AudioProjector(d_w, D, stack=4, n_slots=4))
    a, b, ca, cb = _split_vs_straight(tmp_path, 6, model_fn, lambda: ds, lambda k: tiny_cfg(k, batch_size=8, lr=0.01))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]
    assert not torch.equal(ca["model"]["projector.proj.weight"], model_fn().projector.proj.weight.detach())  # projector trained


# ---------------------------------------------------------------- resume exactness
def _split_vs_straight(tmp_path, steps, model_fn, data_fn, cfg_fn, loss_fn=None):
    straight = train(model_fn(), data_fn(), cfg_fn(steps), tmp_path / "a", loss_fn=loss_fn, progress=False)
    first = train(model_fn(), data_fn(), cfg_fn(steps // 2), tmp_path / "b", loss_fn=loss_fn, progress=False)
    second = train(model_fn(), data_fn(), cfg_fn(steps), tmp_path / "b", resume=True, loss_fn=loss_fn, progress=False)
    return straight, first + second, load_checkpoint(tmp_path / "a" / CKPT_NAME), load_checkpoint(tmp_path / "b" / CKPT_NAME)


@pytest.mark.parametrize("optimizer", ["muon", "adamw"])
def test_resume_is_exact(tmp_path, optimizer):
    a, b, ca, cb = _split_vs_straight(tmp_path, 16, fresh, tiny_dataset, lambda n: tiny_cfg(n, optimizer=optimizer))
    assert [r["step"] for r in b] == list(range(1, 17))
    assert [r["loss"] for r in a] == [r["loss"] for r in b]        # bitwise; 16 steps = 2.7 epochs of 6 batches
    for part in ("model", "ema"):
        for k in ca[part]: assert torch.equal(ca[part][k], cb[part][k]), (part, k)
    assert ca["data"] == cb["data"]
    # the log reads as one run: each step logged once, in order
    assert [r["step"] for r in read_metrics(tmp_path / "b")] == list(range(2, 17, 2))


# ---------------------------------------------------------------- failures
def nan_from(step):
    calls = [0]
    def loss_fn(model, batch, gen):
        calls[0] += 1
        loss, stats = model(batch, gen=gen)
        return (loss * float("inf") - loss * float("inf") if calls[0] >= step else loss), stats
    return loss_fn


def test_nan_stops_and_keeps_last_good_checkpoint(tmp_path):
    with pytest.raises(DivergedError) as e:
        train(fresh(), tiny_dataset(), tiny_cfg(20), tmp_path, loss_fn=nan_from(7), progress=False)
    msg = str(e.value)
    assert "step 7" in msg and "step 4" in msg and str(tmp_path / CKPT_NAME) in msg
    ck = load_checkpoint(tmp_path / CKPT_NAME)
    assert ck["step"] == 4 and all(torch.isfinite(v).all() for v in ck["model"].values())
    # a NaN right after a checkpoint step must not overwrite it either
    before = sha(tmp_path / CKPT_NAME)
    with pytest.raises(DivergedError, match="step 8"):
        train(fresh(), tiny_dataset(), tiny_cfg(20), tmp_path, resume=True, loss_fn=nan_from(4), progress=False)
    assert sha(tmp_path / CKPT_NAME) == before


def test_nan_before_any_checkpoint(tmp_path):
    with pytest.raises(DivergedError, match="No checkpoint had been written yet"):
        train(fresh(), tiny_dataset(), tiny_cfg(20), tmp_path, loss_fn=nan_from(2), progress=False)
    assert not (tmp_path / CKPT_NAME).exists()


def test_damaged_checkpoint_is_a_clear_error(tmp_path):
    train(fresh(), tiny_dataset(), tiny_cfg(4), tmp_path, progress=False)
    p = tmp_path / CKPT_NAME
    p.write_bytes(p.read_bytes()[:1000])                          # truncated, as by a full disk
    with pytest.raises(CheckpointError, match=f"{p}.*damaged or truncated"): load_checkpoint(p)
    with pytest.raises(UserError, match="damaged or truncated"):
        train(fresh(), tiny_dataset(), tiny_cfg(8), tmp_path, resume=True, progress=False)
    with pytest.raises(UserError, match="not found"):
        train(fresh(), tiny_dataset(), tiny_cfg(8), tmp_path / "new", resume=True, progress=False)


def test_fresh_run_refuses_a_used_folder(tmp_path):
    train(fresh(), tiny_dataset(), tiny_cfg(4), tmp_path, progress=False)
    with pytest.raises(UserError, match="resume=True"): train(fresh(), tiny_dataset(), tiny_cfg(4), tmp_path, progress=False)


def test_metrics_log(tmp_path):
    hist = train(fresh(), tiny_dataset(), tiny_cfg(6), tmp_path, progress=False,
                 eval_fn=lambda m, step: {"n_params": sum(p.numel() for p in m.parameters())}, eval_every=3)
    lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    logs = [r for r in lines if "loss" in r]
    assert [r["step"] for r in logs] == [2, 4, 6]
    assert set(logs[0]) == {"step", "loss", "lr", "grad_norm", "steps_per_s", "stats"} and "pred_std" in logs[0]["stats"]
    assert logs[1]["loss"] == pytest.approx((hist[2]["loss"] + hist[3]["loss"]) / 2)
    assert logs[0]["steps_per_s"] > 0 and logs[-1]["lr"] == 0.02
    assert [r["step"] for r in lines if "eval" in r] == [3, 6]
    assert (tmp_path / "config.json").exists()


# ---------------------------------------------------------------- DDP on CPU (gloo, 2 processes)
def _ddp_cfg(steps): return tiny_cfg(steps, batch_size=16, ckpt_every=3, lr=0.01)


def _ddp_worker(out: Path):
    "Run under torchrun: a straight 6-step run and a 3 + resume + 3 run; save the losses and weights of this rank."
    import torch.distributed as dist
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    res = {}
    for name, plan in (("straight", [(6, False)]), ("split", [(3, False), (6, True)])):
        model, hist = None, []
        for steps, resume in plan:
            model = fresh(seed=rank, p_drop=0.0, noise=0.0)           # different init per rank: DDP must broadcast rank 0's
            hist += train(model, tiny_dataset(), _ddp_cfg(steps), out / name, resume=resume, progress=False)
        res[name] = {"loss": [r["loss"] for r in hist], "params": {k: v.clone() for k, v in model.state_dict().items()}}
    torch.save(res, out / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_ddp_two_processes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           __file__, str(tmp_path)], env=env, capture_output=True, text=True, timeout=180)
    secs = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    # both processes end with the same weights, and report the same (averaged) losses
    for k in r0["straight"]["params"]: assert torch.equal(r0["straight"]["params"][k], r1["straight"]["params"][k]), k
    assert r0["straight"]["loss"] == r1["straight"]["loss"]
    # resuming under DDP is exact too
    assert r0["split"]["loss"] == r0["straight"]["loss"]
    for k in r0["straight"]["params"]: assert torch.equal(r0["straight"]["params"][k], r0["split"]["params"][k]), k
    assert len(load_checkpoint(tmp_path / "straight" / CKPT_NAME)["rng"]) == 2
    # one process on the same global batch of 16 gives the same losses and weights (up to float rounding)
    single = fresh(seed=0, p_drop=0.0, noise=0.0)
    hist = train(single, tiny_dataset(), _ddp_cfg(6), tmp_path / "single", progress=False)
    torch.testing.assert_close(torch.tensor(r0["straight"]["loss"]), torch.tensor([r["loss"] for r in hist]), rtol=1e-4, atol=1e-6)
    for k, v in single.state_dict().items(): torch.testing.assert_close(r0["straight"]["params"][k], v, rtol=1e-3, atol=1e-4)
    print(f"DDP 2 processes: {secs:.1f} s for the torchrun launch")


if __name__ == "__main__":
    _ddp_worker(Path(sys.argv[1]))
