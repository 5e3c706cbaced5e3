"""Stage `distill`: train the student on one task with one teacher-weighting method and one seed.

Usage: python -m pipeline.distill TASK METHOD SEED   (writes runs/TASK/METHOD/SEED/)
The teachers' outputs come from the logit cache only: no teacher forward pass runs here. RL-KD runs
through this module's training loop from `pipeline.rl_kd`, which brings the agent: the baselines never
import it, so a change to the agent reruns the RL-KD runs only.
"""

from __future__ import annotations

import copy
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import get_linear_schedule_with_warmup

from . import compute, data, logits, methods, models, training
from . import params as P
from .io import atomic_path, provenance, write_json
from .losses import fill_empty, student_loss


def resolve(params: P.Params, task: str, method: str, seed: str, rl_setup=None) -> int:
    """Check the names a run needs before anything is loaded or trained."""
    P.named(params, "tasks", task)
    allowed = P.allowed_methods(params.run.teachers)
    if method not in allowed:
        raise P.InputError(f"unknown method {method!r}; expected one of {allowed}")
    if (method == "rl_kd") != (rl_setup is not None):
        raise P.InputError(
            "method rl_kd runs as `python -m pipeline.rl_kd TASK SEED` (the rl_kd stage), and only there"
        )
    if not (seed.isascii() and seed.isdigit()) or int(seed) > 2**32 - 1:  # numpy's and torch's seed range
        raise P.InputError(f"seed must be an integer from 0 to 2**32 - 1, got {seed!r}")
    return int(seed)


def load_teachers(task: str, teachers: list[str], splits: dict) -> dict:
    """Stack the cached outputs of all teachers: logits and probs [N, K, C], ce [N, K], pooled [N, H_k] per teacher."""
    out = {}
    for split in logits.SPLITS:
        df = splits[split]
        cached = [logits.load(Path("logits") / task / t / f"{split}.safetensors", df) for t in teachers]
        out[split] = {
            "logits": torch.stack([c["logits"] for c in cached], 1),
            "probs": torch.stack([c["probs"] for c in cached], 1),
            "ce": torch.stack([c["ce"] for c in cached], 1),
            "pooled": [c["pooled"] for c in cached],
        }
    return out


def train_epoch(
    model,
    enc,
    rows,
    labels,
    teacher_logits,
    weigh,
    fill,
    cfg: P.Distill,
    optimizer,
    scheduler,
    pad,
    rng,
    weight_sum,
    desc,
    agent=None,
    reward=None,
    acc=None,
    workers=0,
):
    """One pass over `rows`; with an agent, its selections weight the teachers and it learns from `reward`.
    The student and `teacher_logits` live on `acc`'s device (the CPU without one); the agent on the CPU."""
    model.train()
    device = compute.device(acc)
    total, seen, start = 0.0, 0, time.perf_counter()
    selected, rewards = torch.zeros(teacher_logits.shape[1]), []
    parts = training.training_batches(rows, enc, cfg.batch_size, rng, cfg.group_by_length)
    bar = training.progress(
        training.batches(device, enc, parts, pad, workers, cfg.forward_pieces), desc, total=len(parts)
    )
    for step, (idx, batch) in enumerate(bar, 1):
        measured = reward.before(idx) if agent else None  # the student before its update, in eval mode
        with compute.autocast(acc):
            student_logits, pooled = training.forward(model, batch)
        student_logits, pooled = student_logits.float(), pooled.float()
        w = agent.act(idx, student_logits.cpu(), labels[idx]) if agent else weigh(idx, student_logits.detach().cpu())
        w = fill_empty(w, fill).to(device)
        loss = student_loss(
            student_logits, labels[idx].to(device), teacher_logits[idx], w, cfg.alpha, cfg.temperature, cfg.t2_scaling
        )
        value = training.finite(loss, desc, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        if agent:
            actions = agent.last[1]
            rewards.append(
                agent.learn(
                    reward.after(measured, idx, student_logits.detach(), pooled.detach(), actions.to(device)).cpu()
                )
            )
            selected += agent.last[1].sum(0)
        weight_sum[idx] += w.cpu()
        total += value * len(idx)
        seen += len(idx)
        bar.set_postfix(loss=f"{total / seen:.4f}", refresh=False)
    seconds = time.perf_counter() - start
    stats = {"train_loss": total / seen, "seconds": seconds, "examples_per_s": seen / seconds}
    if agent:
        stats.update(
            selection_rate=(selected / seen).tolist(), reward_mean=sum(rewards) / len(rewards), rewards=rewards
        )
    return stats


def pretrain_policy(model, optimizer, scheduler, weight_sum, epochs, epoch_of) -> list[dict]:
    """Train the policy against the student's feedback while the student trains as usual, then put the
    student (and its optimiser, schedule and weight record) back as it was, so that pre-training teaches
    the agent without moving the student ([reconstructed] from Algorithm 1)."""
    saved = copy.deepcopy((model.state_dict(), optimizer.state_dict(), scheduler.state_dict(), weight_sum.clone()))
    stats = [epoch_of(f"policy pre-training {e}", True) for e in range(1, epochs + 1)]
    model.load_state_dict(saved[0])
    optimizer.load_state_dict(saved[1])
    scheduler.load_state_dict(saved[2])
    weight_sum.copy_(saved[3])
    return stats


def final_selection(agent, model, enc, labels, pad, batch_size, acc) -> torch.Tensor:
    """The policy's selection probability of every teacher for every training instance, at the end."""
    model.eval()
    out = []
    with torch.inference_mode():
        for idx, batch in training.batches(acc.device, enc, training.chunks(np.arange(len(labels)), batch_size), pad):
            with acc.autocast():
                student_logits = model(**batch)[0].float().cpu()
            out.append(agent.probabilities(idx, student_logits, labels[idx]))
    return torch.cat(out)


def fit(
    params: P.Params,
    cfg: P.Distill,
    task: str,
    method: str,
    seed: int,
    splits: dict,
    cache: dict,
    gold: dict,
    labels: list[str],
    acc,
    rl_setup=None,
) -> dict:
    """Train the student with one setting of `distill`; return its best-on-dev state and its record.
    `rl_setup` (RL-KD only, from pipeline.rl_kd) returns the training rows, the agent and its reward."""
    teachers = params.run.teachers
    training.seed_everything(seed)
    rng = np.random.default_rng(seed)
    train = splits["train"]
    model, tokenizer = models.build_student(params, list(train.text_a) + list(train.text_b.dropna()), len(labels))
    model.to(acc.device)
    pad, workers = tokenizer.pad_token_id, params.compute.loader_workers
    segments = models.uses_token_types(model.encoder)
    enc = {s: training.encode(tokenizer, df, params.student.max_length, segments) for s, df in splits.items()}
    rl = method == "rl_kd"
    weighting = methods.build("u_ensemble" if rl else method, teachers, cache, gold, cfg, rng, seed)
    fill = params.rl.no_teacher if rl else "ce"  # only the agent leaves an instance without teachers
    teacher_logits = cache["train"]["logits"].to(acc.device)
    rows, agent, reward = np.arange(len(train)), None, None
    if rl:
        rows, agent, reward = rl_setup(
            params,
            cfg,
            model,
            enc["train"],
            gold["train"],
            cache["train"],
            teacher_logits,
            pad,
            rng,
            acc,
            seed,
            len(labels),
        )

    steps = cfg.epochs * -(-len(rows) // cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    weight_sum = torch.zeros(len(train), len(teachers))
    print(
        f"distill: {method} on {task}, seed {seed}: student {models.count_parameters(model) / 1e6:.2f} M "
        f"parameters, {len(rows)} training examples, teachers {teachers}",
        flush=True,
    )

    def epoch_of(desc, with_agent):
        return train_epoch(
            model,
            enc["train"],
            rows,
            gold["train"],
            teacher_logits,
            weighting.weigh,
            fill,
            cfg,
            optimizer,
            scheduler,
            pad,
            rng,
            weight_sum,
            desc,
            agent if with_agent else None,
            reward,
            acc,
            workers,
        )

    history, best, best_state, pretraining, start = [], -1.0, None, [], time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        if rl and epoch == params.rl.warmup_epochs + 1 and params.rl.pretrain_epochs:
            pretraining = pretrain_policy(model, optimizer, scheduler, weight_sum, params.rl.pretrain_epochs, epoch_of)
        stats = epoch_of(f"{method} epoch {epoch}", rl and epoch > params.rl.warmup_epochs)
        stats.update(weighting.end_epoch())  # MTKD-RL's agent learns here
        dev_logits, _ = training.predict(model, enc["dev"], cfg.eval_batch_size, pad, "dev", acc, workers)
        stats.update(epoch=epoch, dev_accuracy=training.accuracy(dev_logits, gold["dev"]))
        history.append(stats)
        rate = (
            ""
            if "selection_rate" not in stats
            else ", selection rate " + " ".join(f"{t} {r:.2f}" for t, r in zip(teachers, stats["selection_rate"]))
        )
        print(
            f"  epoch {epoch}: loss {stats['train_loss']:.4f}, dev accuracy {stats['dev_accuracy']:.4f}{rate}",
            flush=True,
        )
        if stats["dev_accuracy"] > best:
            best, best_state = stats["dev_accuracy"], copy.deepcopy(model.state_dict())
    train_seconds = time.perf_counter() - start
    model.load_state_dict(best_state)
    t0 = time.perf_counter()
    test_logits, _ = training.predict(model, enc["test"], cfg.eval_batch_size, pad, "test", acc, workers)
    infer_seconds = time.perf_counter() - t0
    if rl:  # the agent's final selection probability of every teacher for every training instance
        selection = final_selection(agent, model, enc["train"], gold["train"], pad, cfg.eval_batch_size, acc)
    else:
        selection = None
    return {
        "model": model,
        "history": history,
        "dev_accuracy": best,
        "test_logits": test_logits,
        "train_seconds": train_seconds,
        "infer_seconds": infer_seconds,
        "weight_sum": weight_sum,
        "static": weighting.static,
        "pretraining": pretraining,
        "selection": selection,
    }


def main(task: str, method: str, seed: str, params_path: str = "params.yaml", rl_setup=None) -> None:
    params = P.load(params_path)
    seed = resolve(params, task, method, seed, rl_setup)
    acc = compute.from_params(params.compute)
    if acc.num_processes > 1:
        raise P.InputError(
            "compute.launch: distill runs on one device (its student is small); run many distill "
            "runs at once with DVC's queue instead (README, GPUs)"
        )
    cfg, teachers = params.distill, params.run.teachers
    card_path = Path("data") / task / "card.json"
    if not card_path.is_file():
        raise P.InputError(f"{card_path}: task not prepared; run `dvc repro prepare@{task}` first")
    splits = {s: data.load_split(Path("data") / task, s) for s in data.SPLITS}
    cache = load_teachers(task, teachers, splits)  # checked against the whole prepared split, as it was cached
    if cfg.max_train is not None and cfg.max_train < len(splits["train"]):  # the cached rows of the capped subset
        keep = np.flatnonzero(splits["train"].id.isin(data.cap(splits["train"], cfg.max_train, params.seed).id))
        splits["train"] = splits["train"].iloc[keep].reset_index(drop=True)
        rows = torch.from_numpy(keep)
        cache["train"] = {
            k: [x[rows] for x in v] if isinstance(v, list) else v[rows] for k, v in cache["train"].items()
        }
    gold = {s: torch.tensor(df.label.to_numpy()) for s, df in splits.items()}
    labels = pd.read_json(card_path, typ="series")["labels"]

    best, chosen, grid = training.best_on_dev(
        cfg, lambda point: fit(params, point, task, method, seed, splits, cache, gold, labels, acc, rl_setup)
    )
    model, history, test_logits, weight_sum = best["model"], best["history"], best["test_logits"], best["weight_sum"]
    static, pretraining, train_seconds = best["static"], best["pretraining"], best["train_seconds"]
    rl, train = method == "rl_kd", splits["train"]
    mean_w = weight_sum / chosen.epochs
    columns = {"id": train.id, **{t: mean_w[:, k].numpy() for k, t in enumerate(teachers)}}
    if rl:  # the agent's final selection probability of every teacher for every training instance
        selection = best["selection"]
        columns.update({f"select_{t}": selection[:, k].numpy() for k, t in enumerate(teachers)})
    out = Path("runs") / task / method / str(seed)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        # per-step rewards in a flat file of their own: DVC's plots cannot read lists nested in history.json
        steps = [{"epoch": h["epoch"], "reward": r} for h in history for r in h.pop("rewards", [])]
        steps = [{"step": i, **s} for i, s in enumerate(steps, 1)]
        keys = list(dict.fromkeys(k for h in history for k in h))  # DVC's plots need the same keys in every row
        write_json(tmp / "history.json", [{k: h.get(k) for k in keys} for h in history])
        if rl:
            write_json(tmp / "rewards.json", steps)
        probs = test_logits.softmax(-1).numpy()
        preds = pd.DataFrame(
            {
                "id": splits["test"].id,
                "label": gold["test"].numpy(),
                "pred": probs.argmax(-1),
                **{f"prob_{c}": probs[:, i] for i, c in enumerate(labels)},
            }
        )
        if "eval_set" in splits["test"].columns:  # MNLI-m and -mm in one test split: the analysis splits them
            preds["eval_set"] = splits["test"].eval_set.to_numpy()
        preds.to_parquet(tmp / "predictions.parquet", index=False)
        pd.DataFrame(columns).to_parquet(tmp / "weights.parquet", index=False)
        write_json(
            tmp / "metrics.json",
            {
                "task": task,
                "method": method,
                "seed": seed,
                "dev_accuracy": best["dev_accuracy"],
                "test_accuracy": training.accuracy(test_logits, gold["test"]),
                **data.by_eval_set("test_accuracy", splits["test"], test_logits, gold["test"]),
                "best_epoch": max(history, key=lambda h: h["dev_accuracy"])["epoch"],
                "train_seconds": train_seconds,
                "train_examples_per_s": sum(h["examples_per_s"] for h in history) / len(history),
                "student_parameters": models.count_parameters(model),
                "student_inference_examples_per_s": len(splits["test"]) / best["infer_seconds"],
                "teacher_weights": {t: float(mean_w[:, k].mean()) for k, t in enumerate(teachers)},
                "static_weights": None
                if static is None or rl
                else {t: float(static[k]) for k, t in enumerate(teachers)},
                "policy_pretraining": [{k: v for k, v in p.items() if k != "rewards"} for p in pretraining],
                **({"grid": grid, "selected": chosen.point_label(cfg)} if cfg.grid else {}),
                "provenance": provenance(
                    seed,
                    {
                        "student": params.student.model_dump(),
                        "distill": cfg.model_dump(),
                        "rl": params.rl.model_dump() if rl else None,
                        "teachers": teachers,
                        "data_seed": params.seed,
                    },
                    compute.describe(acc),
                ),
            },
        )
    print(
        f"distill: {method} on {task}, seed {seed}: dev {best['dev_accuracy']:.4f}, test "
        f"{training.accuracy(test_logits, gold['test']):.4f}, {train_seconds:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
