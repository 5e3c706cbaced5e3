"""What the study writes for a reader after each round: README's findings, and its power against its hours
(curve.md, figures/curve.png|pdf)."""

from __future__ import annotations

from pathlib import Path

from pipeline.io import atomic_path
from pipeline.params_file import InputError

README = Path("README.md")
FINDINGS = ("<!-- findings: written by python -m orchestration.study -->", "<!-- /findings -->")


def write_findings(readme: Path, progress: dict, metrics: dict, earlier: dict | None = None) -> None:
    """README's "What it finds": the study's verdict in the sentences its analysis wrote (metrics.json
    `findings`), between the two FINDINGS markers, with the seeds they rest on. `earlier`: the verdict from before
    rows or tasks were added (study.earlier_verdict), quoted first while the widened study has fewer seeds."""
    text = readme.read_text()
    start, end = text.find(FINDINGS[0]), text.find(FINDINGS[1])
    if start < 0 or end < start:
        raise InputError(f"{readme}: the markers {FINDINGS} are missing; put them where the study's findings go")
    report = f"[results/study/report.md](results/study/report.md#verdict), written by `{progress['command']}`"
    if earlier is None:
        block = f"The study at {seed_count(progress)} ({report}):\n\n{bullets(metrics.get('findings', []))}"
    else:  # the widened rounds' findings stay in their report: at a seed or two they test nothing, and the
        # README is a front page
        new = [f"`{t}`" for t in progress["tasks"] if t not in earlier["tasks"]]
        new += [f"`{r}`" for r in progress["rows"] if r not in earlier["rows"]]
        block = (
            f"The study at {seed_count(earlier)}, before {', '.join(new)} joined it ([results/study/earlier/report.md]"
            f"(results/study/earlier/report.md#verdict)):\n\n{bullets(earlier['findings'])}\n"
            f"With {', '.join(new)} the study runs again from the first seed, the earlier runs restored at each: "
            f"{seed_count(progress)} so far ({report}).\n"
        )
    with atomic_path(readme) as tmp:  # the project's front page: never left half written by a kill
        tmp.write_text(text[:start] + f"{FINDINGS[0]}\n{block}" + text[end:])


def seed_count(progress: dict) -> str:
    n = len(progress["seeds_done"])
    return f"{n} seed{'s' if n != 1 else ''}"


def bullets(sentences: list[str]) -> str:
    return "".join(f"- {s}\n" for s in sentences)


def curve(progress: dict, seeds: list[int], k: int, metrics: dict) -> list[dict]:
    """progress.json's curve with the point of the first k seeds put in: the hours of the rounds that ran them,
    and the primary comparison's and KD's premise's difference, interval, detectable difference and its 95%
    upper bound, from the round's analysis (results/metrics.json)."""
    first = {str(s) for s in seeds[:k]}
    seconds = sum(t for key, t in progress["seconds"].items() if set(key.split(",")) <= first)
    keep = ("task", "a", "b", "role", "diff", "ci_low", "ci_high", "mdd", "mdd_upper")
    chosen = [{key: c[key] for key in keep} for c in metrics["comparisons"] if c["role"] in ("primary", "premise")]
    point = {"seeds": k, "hours": round(seconds / 3600, 3), "comparisons": chosen}
    return sorted([p for p in progress.get("curve", []) if p["seeds"] != k] + [point], key=lambda p: p["seeds"])


def questions(comparisons: list[dict]) -> list[tuple[str, dict]]:
    """One task's comparisons of a round under the question each answers, whose baseline may change from round to
    round (the strongest on dev is chosen again): an agent's first primary comparison is with the strongest
    baseline on dev, its second with the declared one; a single one is both (the strongest is the declared)."""
    out = []
    for c in comparisons:
        if c["role"] == "premise":
            out.append(("KD's premise: best fixed-weight KD - ce", c))
        elif c["role"] == "primary":
            mine = [d for d in comparisons if d["role"] == "primary" and d["a"] == c["a"]]
            if c is mine[0]:
                out.append((f"{c['a']} - strongest on dev", c))
            if c is mine[-1]:
                out.append((f"{c['a']} - {c['b']}", c))  # the declared baseline
    return out


def write_curve(points: list[dict], out: Path) -> None:
    """curve.md and figures/curve.png|pdf: the detectable difference (and its upper bound) against hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def pp(value, sign=""):  # None: not computable at one seed
        return "n/a" if value is None else f"{100 * value:{sign}.2f}"

    rows = [
        f"| {p['seeds']} | {p['hours']:.2f} | {c['task']} | {c['role']}: {c['a']} - {c['b']} | "
        f"{pp(c['diff'], '+')} [{pp(c['ci_low'], '+')}, {pp(c['ci_high'], '+')}] | {pp(c['mdd'])} | "
        f"{pp(c['mdd_upper'])} |"
        for p in points
        for c in p["comparisons"]
    ]
    (out / "curve.md").write_text(
        "# The study's power against its hours\n\n"
        "After each round: the seeds so far, the hours this study's rounds took (runs restored from `make repro` "
        "cost none), and for the primary comparison and KD's premise the difference in points with its 95% "
        "interval, the difference the test detects with 80% power and that difference's 95% upper bound "
        "(docs/statistics.md). The goal: a detectable difference of 0.5 point.\n\n"
        "| seeds | hours | task | comparison | difference [95% CI] | detectable | its upper bound |\n"
        "|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    # a panel per task, a line per question: not one line zigzagging between an agent's two comparisons
    tasks = list(dict.fromkeys(c["task"] for p in points for c in p["comparisons"])) or ["none"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(max(5.5, 3.4 * len(tasks) + 0.6), 3.6), sharey=True, squeeze=False)
    for ax, task in zip(axes[0], tasks):
        lines: dict[str, list] = {}
        for p in points:
            for label, c in questions([c for c in p["comparisons"] if c["task"] == task]):
                if None not in (c["mdd"], c["mdd_upper"]):
                    lines.setdefault(label, []).append((p["hours"], p["seeds"], c))
        for i, (label, at) in enumerate(lines.items()):
            hours = [h for h, _, _ in at]
            (line,) = ax.plot(hours, [100 * c["mdd"] for *_, c in at], "o-", ms=3, label=label)
            ax.plot(hours, [100 * c["mdd_upper"] for *_, c in at], "--", color=line.get_color(), alpha=0.5)
            if i == 0:  # the seed counts once a panel: every line has a point at each round
                for h, k, c in at:
                    ax.annotate(str(k), (h, 100 * c["mdd"]), textcoords="offset points", xytext=(0, -10), fontsize=6)
        for goal in (0.5, 1.0):
            ax.axhline(goal, color="grey", lw=0.8, ls=":")
        ax.set_yscale("log")  # the upper bound at 2 seeds is tens of points, the goal half a point
        ax.set(title=task, xlabel="hours of the study's rounds")
        ax.title.set_fontsize(10)
        ax.legend(fontsize=6, loc="upper right")
    axes[0][0].set_ylabel("detectable difference (points, log)")
    fig.suptitle("Power against hours (numbers: seeds; dashed: 95% upper bound)", fontsize=10)
    fig.tight_layout()
    (out / "figures").mkdir(parents=True, exist_ok=True)
    for ext in ("png", "pdf"):
        fig.savefig(out / "figures" / f"curve.{ext}", dpi=150, metadata={"CreationDate": None} if ext == "pdf" else {})
    plt.close(fig)
