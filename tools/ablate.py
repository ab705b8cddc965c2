#!/usr/bin/env python3
"""One fixed-budget ablation run: text pretraining (cached per settings), speech fine-tuning, test-split
scores.

The learning ablations of this project (notebook 24_learning) were measured with this script, one process per
run, one torch thread each, on the 2-core CPU machine:

    python tools/ablate.py --name S3 --seed 0 --steps 600 \\
        --set data.source=commands latent.max_len=16 projector.n_slots=32 model.text_pos_stride=1.65 \\
        --ft-set data.n_train=2000 data.n_eval=250 flow.decoder_prob=0.5 flow.decoder_p_mean=-2.0

`--set` applies to both stages (so it changes the text backbone too), `--pre-set` to the text stage only,
`--ft-set` to the speech stage only. Backbones are cached under `OUT/backbones/<hash of the text-stage
config>`. The result is one JSON file `OUT/results/NAME-sSEED.json`: test WER / BLEU / word F1 with audio CFG,
without it, and with the null condition only (the text prior), the training curve, and (`--ar`) the
autoregressive baseline trained on the same features and utterances for the same seconds.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from elf_s2t_nb import pipeline  # noqa: E402
from elf_s2t_nb.core import get_preset, override  # noqa: E402
from elf_s2t_nb.demo import stage_configs  # noqa: E402
from elf_s2t_nb.evaluate import score, transcribe_batches  # noqa: E402


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--name", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=600, help="speech fine-tuning steps")
    ap.add_argument("--pre-steps", type=int, default=300, help="text pretraining steps")
    ap.add_argument("--set", nargs="*", default=[], help="overrides for both stages")
    ap.add_argument("--pre-set", nargs="*", default=[], help="overrides for the text stage")
    ap.add_argument("--ft-set", nargs="*", default=[], help="overrides for the speech stage")
    ap.add_argument("--task", default="asr", choices=["asr", "s2tt"])
    ap.add_argument("--size", default="demo")
    ap.add_argument("--ar", action="store_true", help="also train and score the same-budget AR baseline")
    ap.add_argument("--out", default=os.environ.get("ELF_S2T_ABLATE", "ablations"))
    return ap.parse_args(argv)


def text_backbone(pre, out: Path) -> Path:
    "The text-stage run for config `pre`, trained once and cached by the hash of its config."
    key = hashlib.sha1(json.dumps(pre.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    bb = out / "backbones" / key
    if not (bb / "checkpoint.pt").is_file():
        tmp = out / "backbones" / f"{key}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        pipeline.pretrain_text(pre, tmp, progress=False)
        tmp.rename(bb)
    return bb


def scores(run_dir: Path) -> dict:
    "Test-split scores of a speech run: audio CFG, no CFG, null condition; and four sample transcripts."
    r = pipeline.load_run(run_dir)
    ds = pipeline.speech_split(r.cfg, "test", r.whisper, r.text_encoder, r.vocab, False)
    idx = np.array_split(np.arange(len(ds)), -(-len(ds) // 32))
    batches = [ds.__getitems__(i.tolist()) for i in idx]
    sc = r.cfg.sample
    no_cfg = dataclasses.replace(sc, cfg_scale=1.0)
    slots = torch.ceil(ds.feat_lens.float() / r.cfg.projector.stack)   # audio slots that hold speech
    tokens = (ds.ids != r.vocab.eos_id).sum(1).float() + 1               # words' tokens + the first EOS
    ratio = slots / tokens
    res = {"slots_per_token": {"mean": ratio.mean().item(), "std": ratio.std().item(),
                               "slots": slots.mean().item(), "tokens": tokens.mean().item()}}
    for tag, s, null in [("cfg", sc, False), ("nocfg", no_cfg, False), ("prior", no_cfg, True)]:
        o = transcribe_batches(r.model, batches, s, r.vocab, null_cond=null)
        m = score(o["hyps"], o["refs"])
        res[tag] = {k: m[k] for k in ("wer", "bleu_lc", "word_f1") if k in m}
        if tag == "cfg":
            res["samples"] = list(zip(o["refs"][:4], o["hyps"][:4]))
    return res


def main(argv=None) -> dict:
    a = parse_args(argv)
    torch.set_num_threads(1)
    out = Path(a.out)
    base = override(get_preset("cpu-tiny"), a.set + [f"train.seed={a.seed}"])
    pre = override(stage_configs(base, a.size), [f"train.steps={a.pre_steps}"] + a.pre_set)
    t0 = time.perf_counter()
    init = text_backbone(pre, out)
    t_pre = time.perf_counter() - t0
    sets = [f"train.steps={a.steps}", f"train.seed={a.seed}"] + a.ft_set
    # the speech stage starts from the preset with the user's overrides, as `elf-s2t demo` does (not from the
    # text stage's settings)
    ft = override(stage_configs(base, a.size, a.task), sets)
    run = out / "runs" / f"{a.name}-s{a.seed}"
    shutil.rmtree(run, ignore_errors=True)
    t1 = time.perf_counter()
    summ = pipeline.finetune_speech(ft, run, init=init, progress=False)
    res = {
        "name": a.name,
        "seed": a.seed,
        "task": a.task,
        "set": a.set,
        "pre_set": a.pre_set,
        "ft_set": a.ft_set,
        "steps": a.steps,
        "t_pre": t_pre,
        "t_ft": time.perf_counter() - t1,
        "steps_per_s": summ["steps_per_s"],
        "final_loss": summ["final_loss"],
        "config": ft.to_dict(),  # the whole speech-stage config: the preset's defaults may change later
        "text_config": pre.to_dict(),
    }
    res.update(scores(run))
    hist = [json.loads(line) for line in open(run / "metrics.jsonl")]
    res["curve"] = [(h["step"], h["loss"], h["stats"].get("acc")) for h in hist if "loss" in h]
    res["probe"] = [(h["step"], h["eval"]) for h in hist if "eval" in h]
    if a.ar:
        from elf_s2t_nb.ar_baseline import ar_for_run, evaluate_ar
        res["ar_train"] = ar_for_run(run, progress=False)
        e = evaluate_ar(run)
        res["ar"] = {k: e[k] for k in ("wer", "bleu_lc", "word_f1") if k in e}
    (out / "results").mkdir(parents=True, exist_ok=True)
    path = out / "results" / f"{a.name}-s{a.seed}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(res, indent=1))
    tmp.replace(path)
    keys = ("name", "seed", "cfg", "nocfg", "prior", "ar", "steps_per_s", "t_ft")
    print(json.dumps({k: res[k] for k in keys if k in res}))
    return res


if __name__ == "__main__":
    main()
