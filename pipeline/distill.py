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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import get_linear_schedule_with_warmup

from . import compute, logits, methods, models, training
from . import params as P
from .data import SPLITS, by_eval_set, cap, load_split
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


def load_teachers(task: str, teachers: list[str], splits: dict, root: Path = Path(".")) -> dict:
    """Stack the cached outputs of all teachers: logits and probs [N, K, C], ce [N, K], pooled [N, H_k] per teacher."""
    out = {}
    for split in logits.SPLITS:
        df = splits[split]
        cached = [logits.load(root / "logits" / task / t / f"{split}.safetensors", df) for t in teachers]
        out[split] = {
            "logits": torch.stack([c["logits"] for c in cached], 1),
            "probs": torch.stack([c["probs"] for c in cached], 1),
            "ce": torch.stack([c["ce"] for c in cached], 1),
            "pooled": [c["pooled"] for c in cached],
        }
    return out


@dataclass
class TaskData:
    """A prepared task and its teachers' cached outputs: all that a student run reads from disk."""

    task: str
    splits: dict[str, pd.DataFrame]  # train, dev, test (train capped at `distill.max_train`)
    cache: dict[str, dict]  # per split the teachers' outputs, as `load_teachers` stacks them
    gold: dict[str, torch.Tensor]  # per split the gold label ids
    labels: list[str]  # the label names, in id order


def load_task(params: P.Params, task: str, root: Path = Path(".")) -> TaskData:
    """Task `task` as the prepare and cache stages wrote it under `root`, with `distill.max_train` applied."""
    card_path = root / "data" / task / "card.json"
    if not card_path.is_file():
        raise P.InputError(f"{card_path}: task not prepared; run `dvc repro prepare@{task}` first")
    splits = {s: load_split(root / "data" / task, s) for s in SPLITS}
    cache = load_teachers(task, params.run.teachers, splits, root)  # checked against the whole split, as cached
    limit = params.distill.max_train
    if limit is not None and limit < len(splits["train"]):  # the cached rows of the capped subset
        keep = np.flatnonzero(splits["train"].id.isin(cap(splits["train"], limit, params.seed).id))
        splits["train"] = splits["train"].iloc[keep].reset_index(drop=True)
        rows = torch.from_numpy(keep)
        cache["train"] = {
            k: [x[rows] for x in v] if isinstance(v, list) else v[rows] for k, v in cache["train"].items()
        }
    gold = {s: torch.tensor(df.label.to_numpy()) for s, df in splits.items()}
    labels = list(pd.read_json(card_path, typ="series")["labels"])
    return TaskData(task, splits, cache, gold, labels)


@dataclass
class Student:
    """A trained student, at its best epoch on dev, and the record of its training."""

    model: torch.nn.Module
    history: list[dict]  # per epoch: loss, dev accuracy, speed (and RL-KD's selection rates and rewards)
    dev_accuracy: float
    test_logits: torch.Tensor
    train_seconds: float
    infer_seconds: float
    weight_sum: torch.Tensor  # [N, K]: each training instance's teacher weights, summed over epochs
    static: torch.Tensor | None  # a method's one weight per teacher, where it has one
    pretraining: list[dict]  # RL-KD's policy pre-training epochs
    selection: torch.Tensor | None  # RL-KD: the final policy's selection probabilities [N, K]
    setting: P.Distill  # the `distill` setting it trained with (a grid's best point on dev)
    grid: list[dict] = field(default_factory=list)  # every grid point's dev accuracy (empty without a grid)


class Teaching:
    """Distillation's objective for one epoch (`training.train_epoch`'s hooks): per batch, the teachers'
    weights (a method's, or RL-KD's agent's selections), the KD loss (`losses.student_loss`), and the
    record of the weights; with an agent, its reward is measured around the update and it learns."""

    def __init__(self, labels, teacher_logits, weigh, fill: str, cfg: P.Distill, weight_sum, agent=None, reward=None):
        self.labels, self.teacher_logits, self.weigh, self.fill, self.cfg = labels, teacher_logits, weigh, fill, cfg
        self.weight_sum, self.agent, self.reward = weight_sum, agent, reward
        self.selected, self.rewards, self.seen = torch.zeros(teacher_logits.shape[1]), [], 0

    def before(self, idx) -> None:
        self.measured = self.reward.before(idx) if self.agent else None  # the student before its update, eval mode

    def loss(self, idx, logits: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
        labels = self.labels[idx]
        w = self.agent.act(idx, logits.cpu(), labels) if self.agent else self.weigh(idx, logits.detach().cpu())
        self.w, self.outputs = fill_empty(w, self.fill).to(logits.device), (logits.detach(), pooled.detach())
        cfg, targets = self.cfg, self.teacher_logits[idx]
        return student_loss(
            logits, labels.to(logits.device), targets, self.w, cfg.alpha, cfg.temperature, cfg.t2_scaling
        )

    def after(self, idx) -> None:
        if self.agent:
            logits, pooled = self.outputs
            actions = self.agent.last[1]
            self.rewards.append(
                self.agent.learn(self.reward.after(self.measured, idx, logits, pooled, actions.to(logits.device)).cpu())
            )
            self.selected += actions.sum(0)
        self.weight_sum[idx] += self.w.cpu()
        self.seen += len(idx)

    def stats(self) -> dict:
        if not self.agent:
            return {}
        return {
            "selection_rate": (self.selected / self.seen).tolist(),
            "reward_mean": sum(self.rewards) / len(self.rewards),
            "rewards": self.rewards,
        }


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
        loaded = training.batches(compute.device(acc), enc, training.chunks(np.arange(len(labels)), batch_size), pad)
        for idx, batch in loaded:
            with compute.autocast(acc):
                student_logits = model(**batch)[0].float().cpu()
            out.append(agent.probabilities(idx, student_logits, labels[idx]))
    return torch.cat(out)


def fit(params: P.Params, cfg: P.Distill, data: TaskData, method: str, seed: int, acc=None, rl_setup=None) -> Student:
    """Train the student with one setting of `distill`; return it at its best epoch on dev.
    `rl_setup` (RL-KD only, from pipeline.rl_kd) returns the training rows, the agent and its reward."""
    teachers, splits, gold, cache = params.run.teachers, data.splits, data.gold, data.cache
    training.seed_everything(seed)
    rng = np.random.default_rng(seed)
    train = splits["train"]
    model, tokenizer = models.build_student(params, list(train.text_a) + list(train.text_b.dropna()), len(data.labels))
    device = compute.device(acc)
    model.to(device)
    pad, workers = tokenizer.pad_token_id, params.compute.loader_workers
    segments = models.uses_token_types(model.encoder)
    enc = {s: training.encode(tokenizer, df, params.student.max_length, segments) for s, df in splits.items()}
    rl = method == "rl_kd"
    weighting = methods.build("u_ensemble" if rl else method, teachers, cache, gold, cfg, rng, seed)
    fill = params.rl.no_teacher if rl else "ce"  # only the agent leaves an instance without teachers
    teacher_logits = cache["train"]["logits"].to(device)
    rows, agent, reward = np.arange(len(train)), None, None
    if rl:
        rows, agent, reward = rl_setup(
            params, cfg, model, enc["train"], gold["train"], cache["train"], teacher_logits, pad, rng, acc, seed,
            len(data.labels),
        )  # fmt: skip

    steps = cfg.epochs * -(-len(rows) // cfg.batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * steps), steps)
    loop = training.Loop(
        enc["train"], rows, cfg.batch_size, pad, rng, optimizer, scheduler, acc, workers, cfg.group_by_length,
        cfg.forward_pieces,
    )  # fmt: skip
    weight_sum = torch.zeros(len(train), len(teachers))
    print(
        f"distill: {method} on {data.task}, seed {seed}: student {models.count_parameters(model) / 1e6:.2f} M "
        f"parameters, {len(rows)} training examples, teachers {teachers}",
        flush=True,
    )

    def epoch_of(desc, with_agent):
        teaching = Teaching(
            gold["train"], teacher_logits, weighting.weigh, fill, cfg, weight_sum, agent if with_agent else None, reward
        )
        return training.train_epoch(model, loop, teaching, desc)

    history, best, best_state, pretraining, start = [], -1.0, None, [], time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        if rl and epoch == params.rl.warmup_epochs + 1 and params.rl.pretrain_epochs:
            pretraining = pretrain_policy(model, optimizer, scheduler, weight_sum, params.rl.pretrain_epochs, epoch_of)
        stats = epoch_of(f"{method} epoch {epoch}", rl and epoch > params.rl.warmup_epochs)
        stats.update(weighting.end_epoch())  # MTKD-RL's agent learns here
        dev_logits, _ = training.predict(model, enc["dev"], cfg.eval_batch_size, pad, "dev", acc, workers)
        stats.update(epoch=epoch, dev_accuracy=training.accuracy(dev_logits, gold["dev"]))
        history.append(stats)
        rates = stats.get("selection_rate")
        rate = "" if rates is None else ", selection rate " + " ".join(f"{t} {r:.2f}" for t, r in zip(teachers, rates))
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
    selection = (
        final_selection(agent, model, enc["train"], gold["train"], pad, cfg.eval_batch_size, acc) if rl else None
    )
    return Student(
        model, history, best, test_logits, train_seconds, infer_seconds, weight_sum, weighting.static, pretraining,
        selection, cfg,
    )  # fmt: skip


def distill(params: P.Params, data: TaskData, method: str, seed: int, acc=None, rl_setup=None) -> Student:
    """Distil the teachers of `data` into a student with `method`: with `distill.grid`, one student per grid
    point from the same seed, the best on dev kept (and every point's dev accuracy in its `grid`)."""
    cfg = params.distill
    best, chosen, grid = training.best_on_dev(cfg, lambda point: fit(params, point, data, method, seed, acc, rl_setup))
    best.grid = grid if cfg.grid else []
    return best


def record(params: P.Params, data: TaskData, method: str, seed: int, student: Student, acc=None) -> dict:
    """A run's metrics.json: accuracy, speed, the teachers' mean weights and the run's provenance."""
    teachers, test, cfg, history = params.run.teachers, data.splits["test"], params.distill, student.history
    mean_w = student.weight_sum / student.setting.epochs
    rl, static = method == "rl_kd", student.static
    return {
        "task": data.task,
        "method": method,
        "seed": seed,
        "dev_accuracy": student.dev_accuracy,
        "test_accuracy": training.accuracy(student.test_logits, data.gold["test"]),
        **by_eval_set("test_accuracy", test, student.test_logits, data.gold["test"]),
        "best_epoch": max(history, key=lambda h: h["dev_accuracy"])["epoch"],
        "train_seconds": student.train_seconds,
        "train_examples_per_s": sum(h["examples_per_s"] for h in history) / len(history),
        "student_parameters": models.count_parameters(student.model),
        "student_inference_examples_per_s": len(test) / student.infer_seconds,
        "teacher_weights": {t: float(mean_w[:, k].mean()) for k, t in enumerate(teachers)},
        "static_weights": None if static is None or rl else {t: float(static[k]) for k, t in enumerate(teachers)},
        "policy_pretraining": [{k: v for k, v in p.items() if k != "rewards"} for p in student.pretraining],
        **({"grid": student.grid, "selected": student.setting.point_label(cfg)} if cfg.grid else {}),
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
    }


def write_run(out: Path, params: P.Params, data: TaskData, method: str, seed: int, student: Student, acc=None):
    """The run's folder, written whole or not at all: history, RL-KD's rewards, test predictions, the
    teachers' mean weights per training instance (RL-KD: and the policy's selections), metrics."""
    teachers, history, test = params.run.teachers, student.history, data.splits["test"]
    mean_w = student.weight_sum / student.setting.epochs
    columns = {"id": data.splits["train"].id, **{t: mean_w[:, k].numpy() for k, t in enumerate(teachers)}}
    if student.selection is not None:  # the agent's final selection probability of every teacher for every instance
        columns.update({f"select_{t}": student.selection[:, k].numpy() for k, t in enumerate(teachers)})
    metrics = record(params, data, method, seed, student, acc)
    with atomic_path(out) as tmp:
        tmp.mkdir()
        # per-step rewards in a flat file of their own: DVC's plots cannot read lists nested in history.json
        steps = [{"epoch": h["epoch"], "reward": r} for h in history for r in h.get("rewards", [])]
        keys = [k for k in dict.fromkeys(k for h in history for k in h) if k != "rewards"]
        # DVC's plots need the same keys in every row
        write_json(tmp / "history.json", [{k: h.get(k) for k in keys} for h in history])
        if method == "rl_kd":
            write_json(tmp / "rewards.json", [{"step": i, **s} for i, s in enumerate(steps, 1)])
        probs = student.test_logits.softmax(-1).numpy()
        preds = pd.DataFrame(
            {
                "id": test.id,
                "label": data.gold["test"].numpy(),
                "pred": probs.argmax(-1),
                **{f"prob_{c}": probs[:, i] for i, c in enumerate(data.labels)},
            }
        )
        if "eval_set" in test.columns:  # MNLI-m and -mm in one test split: the analysis splits them
            preds["eval_set"] = test.eval_set.to_numpy()
        preds.to_parquet(tmp / "predictions.parquet", index=False)
        pd.DataFrame(columns).to_parquet(tmp / "weights.parquet", index=False)
        write_json(tmp / "metrics.json", metrics)


def main(task: str, method: str, seed: str, params_path: str = "params.yaml", rl_setup=None) -> None:
    params = P.load(params_path)
    seed = resolve(params, task, method, seed, rl_setup)
    acc = compute.from_params(params.compute)
    if acc.num_processes > 1:
        raise P.InputError(
            "compute.launch: distill runs on one device (its student is small); run many distill "
            "runs at once with DVC's queue instead (docs/gpus.md)"
        )
    data = load_task(params, task)
    student = distill(params, data, method, seed, acc, rl_setup)
    write_run(Path("runs") / task / method / str(seed), params, data, method, seed, student, acc)
    test = training.accuracy(student.test_logits, data.gold["test"])
    print(
        f"distill: {method} on {task}, seed {seed}: dev {student.dev_accuracy:.4f}, test {test:.4f}, "
        f"{student.train_seconds:.0f} s",
        flush=True,
    )


if __name__ == "__main__":
    with P.reported_errors():
        main(*sys.argv[1:])
