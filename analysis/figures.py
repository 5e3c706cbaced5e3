"""The paper's figures (matplotlib, PNG and PDF, sized for a paper: 3.4 in one column, 7 in two)."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats as st  # noqa: E402

from pipeline.io import atomic_path  # noqa: E402

STYLE = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "figure.dpi": 150,
    "savefig.bbox": "tight",
    "axes.spines.top": False,
    "axes.spines.right": False,
}
COLORS = plt.get_cmap("tab10").colors
REFERENCE = "black"  # RL-KD's colour in every figure
SEED_TICKS = (1, 2, 3, 5, 10, 20)


def save(fig, folder: Path, stem: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for ext in ("png", "pdf"):
        with atomic_path(folder / f"{stem}.{ext}") as tmp:
            # no creation date in the PDF: the same runs give the same bytes
            fig.savefig(tmp, format=ext, bbox_inches="tight", metadata={"CreationDate": None} if ext == "pdf" else None)
        written.append(f"{stem}.{ext}")
    plt.close(fig)
    return written


def close(figs) -> None:
    """Let go of figures that were not saved (save closes the ones it writes)."""
    for fig in figs:
        plt.close(fig)


def t_interval(values: np.ndarray, confidence: float) -> float:
    """Half-width of the t confidence interval of the mean over seeds (0 for one seed)."""
    n = len(values)
    return 0.0 if n < 2 else float(st.t.ppf((1 + confidence) / 2, n - 1) * np.std(values, ddof=1) / np.sqrt(n))


def main_results(runs: pd.DataFrame, order: list[str], tasks: list[str], confidence: float, reference: str):
    """Test accuracy per method and task: mean over seeds with its t interval, and every seed as a dot."""
    with plt.rc_context(STYLE):
        # constrained: the figure title gets its own room above the panel titles
        fig, axes = plt.subplots(
            1, len(tasks), figsize=(7, 0.22 * len(order) + 0.8), sharey=True, squeeze=False, layout="constrained"
        )
        for ax, task in zip(axes[0], tasks):
            t = runs[runs.task == task]
            for y, method in enumerate(order):
                acc = 100 * t[t.method == method].test_accuracy.to_numpy()
                if not len(acc):
                    continue
                color = REFERENCE if method == reference else COLORS[0]
                ax.errorbar(acc.mean(), y, xerr=t_interval(acc, confidence), fmt="o", color=color, ms=4, capsize=2)
                if len(acc) > 1:  # one seed: its dot would only repeat the mean
                    ax.scatter(acc, np.full(len(acc), y + 0.25), s=5, color=color, alpha=0.5, linewidths=0)
            u = t[t.method == "u_ensemble"].test_accuracy
            if len(u):
                ax.axvline(100 * u.mean(), color="grey", lw=0.6, ls="--")
            ax.set_title(task)
            ax.set_xlabel("test accuracy (%)")
            ax.grid(axis="x", lw=0.3)
        axes[0, 0].set_yticks(range(len(order)), order)
        axes[0, 0].invert_yaxis()
        seeds = runs.seed.nunique()
        what = f"Mean over seeds with {100 * confidence:.0f}% t interval; dots: seeds" if seeds > 1 else "One seed"
        dashed = "; dashed: u_ensemble" if (runs.method == "u_ensemble").any() else ""
        fig.suptitle(what + dashed, fontsize=7)
        return fig


def rl_selection(policy: pd.DataFrame, rewards: pd.DataFrame, teachers: list[str], tasks: list[str]):
    """Top: the agent's selection rate per teacher per policy epoch, pre-training (P1, P2, ...) then
    joint training (mean and std over seeds). Bottom: the reward per joint-training step."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(2, len(tasks), figsize=(7, 3.6), squeeze=False)
        for col, task in enumerate(tasks):
            ax = axes[0, col]
            p = policy[policy.task == task]
            labels = list(dict.fromkeys(p.label))
            x = p.label.map({label: i for i, label in enumerate(labels)}).to_numpy()
            rates = np.stack(p.selection_rate.to_numpy()) if len(p) else np.zeros((0, len(teachers)))
            for k, name in enumerate(teachers):
                curve = pd.Series(rates[:, k], index=x).groupby(level=0).agg(["mean", "std"])
                ax.errorbar(
                    curve.index,
                    curve["mean"],
                    yerr=curve["std"].fillna(0),
                    marker="o",
                    ms=3,
                    capsize=2,
                    label=name,
                    color=COLORS[k],
                )
            ax.set_xticks(range(len(labels)), labels)
            ax.set(
                title=f"{task}: teacher selection rate",
                xlabel="policy epoch (P: pre-training; the student is restored after it)",
                ylabel="selected share",
                ylim=(0, 1),
            )
            ax.legend(frameon=False, ncols=3, loc="lower center")
            ax = axes[1, col]
            # each seed thin and grey, their mean over seeds on top: a colour a seed runs out at the study's 16
            curves = []
            for _, s in rewards[rewards.task == task].groupby("seed"):
                steps = s.sort_values(["epoch", "step"]).reward
                curves.append(steps.rolling(max(1, len(steps) // 20), min_periods=1).mean().reset_index(drop=True))
            for i, curve in enumerate(curves):
                ax.plot(curve.to_numpy(), lw=0.5, color="0.6", label="each seed" if i == 0 else None)
            if curves:
                mean = pd.concat(curves, axis=1).mean(axis=1)  # step by step, over the seeds that reach it
                ax.plot(mean.to_numpy(), lw=1.4, color=COLORS[0], label=f"mean of {len(curves)} seeds")
            ax.set(
                title=f"{task}: reward per step (rolling mean)",
                xlabel="policy step (joint training)",
                ylabel="mean reward",
            )
            ax.legend(frameon=False)
        fig.tight_layout()
        return fig


def selection_vs_correctness(sel: pd.DataFrame, teachers: list[str], tasks: list[str]):
    """The agent's mean selection probability where each teacher is right versus wrong (train, by seed)."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(tasks), figsize=(7, 2.2), sharey=True, squeeze=False)
        width = 0.38
        for ax, task in zip(axes[0], tasks):
            s = sel[sel.task == task].groupby("teacher")[["right", "wrong", "wrong_share"]].agg(["mean", "std"])
            x = np.arange(len(teachers))
            for j, (kind, color) in enumerate((("right", COLORS[2]), ("wrong", COLORS[3]))):
                ax.bar(
                    x + (j - 0.5) * width,
                    s.loc[teachers, (kind, "mean")],
                    width,
                    yerr=s.loc[teachers, (kind, "std")].fillna(0),
                    color=color,
                    capsize=2,
                    label=f"teacher {kind}",
                )
            labels = [f"{t}\n({100 * s.loc[t, ('wrong_share', 'mean')]:.0f}% wrong)" for t in teachers]
            ax.set_xticks(x, labels)
            ax.set(title=task, ylim=(0, 1))
            ax.axhline(0.5, color="grey", lw=0.6, ls="--")
        axes[0, 0].set_ylabel("mean selection probability")
        axes[0, 0].legend(frameon=False)
        fig.tight_layout()
        return fig


def teacher_vs_student(numbers: pd.DataFrame):
    """Table 1's question: does a stronger teacher give a stronger student? One point per teacher and task."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(3.4, 2.6))
        for i, (task, df) in enumerate(numbers.groupby("task", sort=False)):
            ax.errorbar(
                100 * df.teacher_test,
                100 * df.student_test,
                yerr=100 * df.student_std.fillna(0),
                fmt="o",
                ms=4,
                capsize=2,
                color=COLORS[i],
                label=task,
            )
            for _, r in df.iterrows():
                ax.annotate(
                    r.teacher,
                    (100 * r.teacher_test, 100 * r.student_test),
                    fontsize=6,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
        ax.set(xlabel="teacher test accuracy (%)", ylabel="single-teacher student (%)")
        ax.legend(frameon=False)
        ax.grid(lw=0.3)
        fig.tight_layout()
        return fig


def learning_curves(hist: pd.DataFrame, order: list[str], tasks: list[str], reference: str):
    """Dev accuracy per epoch per method, mean over seeds."""
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(tasks), figsize=(7, 2.6), squeeze=False)
        for ax, task in zip(axes[0], tasks):
            t = hist[hist.task == task]
            others = [m for m in order if m != reference]
            for i, method in enumerate([*others, reference]):
                curve = t[t.method == method].groupby("epoch").dev_accuracy.mean()
                if len(curve):
                    ref = method == reference
                    ax.plot(
                        curve.index,
                        100 * curve.to_numpy(),
                        marker="o",
                        ms=2.5,
                        lw=1.6 if ref else 0.8,
                        color=REFERENCE if ref else COLORS[i % 10],
                        ls="-" if i < 10 else "--",
                        label=method,
                    )
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
            ax.set(title=task, xlabel="epoch", ylabel="dev accuracy (%)")
            ax.grid(lw=0.3)
        axes[0, -1].legend(frameon=False, bbox_to_anchor=(1.02, 1), loc="upper left")
        fig.tight_layout()
        return fig


def power(numbers: pd.DataFrame, gap: float, confidence_power: float):
    """The primary comparison's smallest detectable difference against seeds, one line per test-set size, per
    task; the training minutes of each number of seeds on a second axis; the gap of interest dashed."""
    tasks = list(dict.fromkeys(numbers.task))
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            1, len(tasks), figsize=(3.4 * min(len(tasks), 2), 2.6), squeeze=False, constrained_layout=True
        )
        for ax, task in zip(axes[0], tasks):
            t = numbers[numbers.task == task]
            for i, (examples, line) in enumerate(t.groupby("examples")):
                ax.plot(line.seeds, 100 * line.mdd, marker="o", ms=2.5, color=COLORS[i], label=f"{examples:,} test")
            here = t[t.measured]
            ax.plot(here.seeds, 100 * here.mdd, "k*", ms=7, label="this run")
            ax.axhline(gap, color="grey", ls="--", lw=0.8)
            ax.set(xscale="log", yscale="log", xlabel="seeds", title=f"{task}: {t.comparison.iloc[0]}")
            ax.set_xticks(SEED_TICKS, [str(s) for s in SEED_TICKS])
            for axis in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
                axis(matplotlib.ticker.FormatStrFormatter("%g"))
            ax.annotate(f"{gap:g} pp", (1, gap), xytext=(2, 2), textcoords="offset points", color="grey", fontsize=6)
            per_seed = t.minutes.iloc[0] / t.seeds.iloc[0]
            top = ax.secondary_xaxis("top", functions=(lambda s, m=per_seed: s * m, lambda m, p=per_seed: m / p))
            top.set_xlabel("training minutes (every method)")
            top.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%g"))
        axes[0][0].set_ylabel(f"detectable difference (pp, {100 * confidence_power:.0f}% power)")
        axes[0][-1].legend(frameon=False)
    return fig
