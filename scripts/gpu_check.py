"""GPU checks of the training loop (needs a CUDA GPU; no data or downloads: a synthetic task whose text is in the features).

    python scripts/gpu_check.py                                               # loop on CUDA, resume, ELF-B step time
    DDP=1 torchrun --standalone --nproc_per_node N scripts/gpu_check.py      # the same loop under DDP (NCCL)

1. `train.train` on CUDA for 600 steps (bf16 autocast, TF32, Muon + Adam, EMA): steps/s, loss first/last, finite;
2. resume exactness on CUDA: 40 steps straight vs 20 + resume + 20 (max loss and weight difference);
3. `gpubench.gpu_bench("full", decode=False)`: ELF-B at the paper's shapes, eager and `torch.compile`d.
Results go to $OUT/gpu_check.json (default /tmp/out) and the run folders beside it."""
import json, os, shutil, sys, time, dataclasses
from pathlib import Path
import torch
from elf_s2t_nb.core import get_preset, override
from elf_s2t_nb.model import ELF, ElfS2T
from elf_s2t_nb.projector import AudioProjector
from elf_s2t_nb.train import train
from elf_s2t_nb.core import precision_policy
from elf_s2t_nb.run_state import BatchStream, CKPT_NAME, load_checkpoint
OUT = Path(os.environ.get("OUT", "/tmp/out")); OUT.mkdir(parents=True, exist_ok=True)
res = {}

class Synth:
    "N fixed examples: Whisper-like features (T frames, d=384), text latents (L, D=384), ids (vocab V); texts tied to features."
    def __init__(self, n=256, T=160, L=32, D=384, V=500, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, V, (n, L), generator=g)
        table = torch.randn(V, D, generator=g)
        self.x0 = table[self.ids]
        mix = torch.randn(D, 384, generator=g) / D ** .5
        # features carry the text: each group of 5 frames repeats (a projection of) one token's latent + noise
        f = (self.x0 @ mix).repeat_interleave(5, 1)[:, :T]
        self.feats = f + 0.3 * torch.randn(f.shape, generator=g)
        self.n, self.T = n, T
    def __len__(self): return self.n
    def __getitems__(self, ix):
        ix = torch.as_tensor(ix)
        return {"x0": self.x0[ix], "ids": self.ids[ix], "features": self.feats[ix], "feat_lens": torch.full((len(ix),), self.T)}

def build(cfg, V=500):
    # model.build_model does this too (and sets n_cond); kept explicit so the script reads on its own
    elf = ELF(dataclasses.replace(cfg.model, max_length=cfg.projector.n_slots + cfg.latent.max_len, text_encoder_dim=384, vocab_size=V))
    return ElfS2T(elf, AudioProjector.from_config(cfg.projector, 384, 384), cfg.flow)

def cfg_for(steps):
    return override(get_preset("cpu-tiny"), [f"train.steps={steps}", "train.optimizer=muon", "train.lr=2e-3", "train.ckpt_every=100000",
                                        "train.log_every=10", "projector.stack=4", "projector.n_slots=40", "data.batch_size=64"])

def run(name, steps, resume=False, fresh=True):
    d = OUT.parent / "runs" / name
    if fresh and not resume: shutil.rmtree(d, ignore_errors=True)
    torch.manual_seed(0)
    cfg = cfg_for(steps)
    m = build(cfg)
    t0 = time.time()
    h = train(m, BatchStream(Synth(), 64, seed=1), cfg, d, resume=resume, device="cuda", progress=False)
    torch.cuda.synchronize()
    return h, time.time() - t0, d

def main():
    res["device"] = torch.cuda.get_device_name(0); res["torch"] = torch.__version__
    h, sec, d = run("long", 600)
    ls = [r["loss"] for r in h]
    res["cuda_train"] = dict(steps=len(h), seconds=round(sec, 1), steps_per_s=round(len(h) / sec, 1), first10=sum(ls[:10]) / 10,
                             last10=sum(ls[-10:]) / 10, acc_last=h[-1].get("acc"), finite=all(map(lambda x: x == x, ls)),
                             amp=str(precision_policy(torch.device("cuda"))),
                             tf32=torch.backends.cuda.matmul.allow_tf32)
    print(json.dumps(res["cuda_train"]), flush=True)
    a, _, da = run("straight", 40)
    b1, _, db = run("split", 20)
    b2, _, _ = run("split", 40, resume=True)
    la, lb = [r["loss"] for r in a], [r["loss"] for r in b1 + b2]
    wa, wb = load_checkpoint(da / CKPT_NAME)["model"], load_checkpoint(db / CKPT_NAME)["model"]
    res["resume_cuda"] = dict(n=len(lb), max_loss_diff=max(abs(x - y) for x, y in zip(la, lb)),
                              max_weight_diff=max((wa[k].float() - wb[k].float()).abs().max().item() for k in wa))
    print(json.dumps(res["resume_cuda"]), flush=True)
    from elf_s2t_nb.gpubench import gpu_bench
    for comp in (False, True):
        try:
            r = gpu_bench("full", decode=False, compile=comp)
            res[f"elfb_compile_{comp}"] = r["train"]
        except Exception as e: res[f"elfb_compile_{comp}"] = repr(e)[:400]
        print(json.dumps(res[f"elfb_compile_{comp}"], default=str)[:800], flush=True)
    (OUT / "gpu_check.json").write_text(json.dumps(res, indent=1, default=str))

if __name__ == "__main__":
    if os.environ.get("DDP"):
        cfg = cfg_for(30); torch.manual_seed(0)
        h = train(build(cfg), BatchStream(Synth(), 64, seed=1), cfg, OUT.parent / "runs" / "ddp", device="cuda", progress=False)
        if int(os.environ.get("RANK", 0)) == 0: print("DDP", os.environ.get("WORLD_SIZE"), "steps", len(h), "last loss", h[-1]["loss"], flush=True)
    else: main()
