"""The report's decisions in words: each comparison's test, the verdict's sentences (README's findings and
report.md's Verdict) and the significance and power tables read out."""

from __future__ import annotations

import pandas as pd

from pipeline import methods


def count(n: int, one: str, many: str) -> str:
    """`1 is`, `2 are`: a number with the verb that agrees with it."""
    return f"{n} {one if n == 1 else many}"


def pp(v: float) -> str:
    return f"{100 * v:+.1f}"


def what_differs(a: str, b: str, agents=()) -> str:
    """Besides the method, what the two compared runs did differently."""
    out = "Both students trained on the same rows (train less the `distill.held_out_fraction` slice)"
    readers = [m for m in (a, b) if m in agents]  # an agent's rewards are measured on that slice
    return out + (f"; `{readers[0]}` also read the slice's labels for its reward." if readers else ".")


# the paper's Table 1 (analysis/paper_results.csv): a stronger teacher does not always give a stronger student
PAPER_TABLE1 = (
    "BERT_3 learns better from BERT-Base (teacher 83.3 / 83.8 on MRPC / MNLI-mm, student 74.0 / 75.3), its own "
    "family, than from the stronger RoBERTa-Base (88.5 / 86.8, student 73.0 / 71.9)"
)


def paper_table1(verdict: str) -> str:
    """The paper's Table 1 beside ours: `the same kind of thing` only where ours found it."""
    if verdict == "better":
        return f"The paper's Table 1 found the same kind of thing: {PAPER_TABLE1}."
    return (
        f"The paper's Table 1 found that a weaker teacher can give the stronger student: {PAPER_TABLE1}; "
        "not shown here."
    )


def tested(r, cfg) -> str:
    """A comparison's numbers and verdict: difference, interval, p (Holm-adjusted where it is), power."""
    if pd.isna(r.p):
        return f"{pp(r['diff'])} points, one seed: not tested (training randomness unmeasured)"
    holm = f", Holm {r.p_adjusted:.3f}" if r.role == "primary" and r.p_adjusted != r.p else ""
    return (
        f"{pp(r['diff'])} points [{pp(r.ci_low)}, {pp(r.ci_high)}], p {r.p:.3f}{holm} ({int(r.seeds)} seeds, t on "
        f"{int(r.seeds) - 1} df); it could detect {100 * r.mdd:.1f} pp (95% upper bound {100 * r.mdd_upper:.1f}) "
        f"with {100 * cfg.power:.0f}% power: **{r.verdict}**"
    )


def verdict_sentences(task: str, t: pd.DataFrame, cfg, kinds: dict | None = None, brief: bool = False) -> list[str]:
    """The declared questions on one task, each with its interval and power: KD against `ce` (KD's premise), each
    agent of cfg.references against the strongest baseline on dev and against cfg.baseline (its primary family),
    and Table 1's finding. `kinds`: each agent's file (rl_kd, effect_agent), to say what it is; `brief`: without
    what the compared runs did differently (README's findings)."""
    out, kinds = [], kinds or {}
    for _, r in t[t.role == "premise"].iterrows():
        out.append(f"On `{task}`, KD's premise, `{r.a}` (the best fixed-weight KD on dev) - `ce`: {tested(r, cfg)}.")
    for ref in dict.fromkeys(t[t.role == "primary"].family):
        family = t[(t.role == "primary") & (t.family == ref)]
        what = methods.label(kinds.get(ref, ref)) or "the agent"
        # the family: the strongest baseline on dev, then the declared one (one comparison where they are one)
        labels = ["the strongest baseline on dev", "the declared baseline"]
        if len(family) == 1 and family.b.iloc[0] == cfg.baseline:
            labels = ["the strongest baseline on dev, and the declared baseline"]
        parts = [f"`{ref}` - `{r.b}` ({label}): {tested(r, cfg)}" for label, (_, r) in zip(labels, family.iterrows())]
        first = family.iloc[0]
        beats = first.verdict == "better"
        out.append(
            f"On `{task}`, {what}: "
            + "; ".join(parts)
            + (
                f". So `{ref}` beats every baseline here."
                if beats
                else f". So `{ref}` is not shown to beat every baseline here (the paper claims RL-KD does)."
            )
            + ("" if brief else f" {what_differs(first.a, first.b, cfg.references)}")
        )
    for _, r in t[t.role == "table1"].iterrows():
        out.append(
            f"On `{task}`, Table 1's finding: the single-teacher student best on dev, `{r.a}`, against the student of "
            f"the teacher strongest on dev, `{r.b}`: {tested(r, cfg)}. {paper_table1(r.verdict)}"
        )
    return out


def agreement(sig: pd.DataFrame, baseline: str) -> list[str]:
    """With two tasks or more, each declared question's verdicts side by side, and whether the tasks agree; a method
    that wins on one task and loses on another is said to."""
    if sig.task.nunique() < 2:
        return []
    asked = sig[sig.role.isin(["premise", "primary", "table1"])]
    answers: dict[str, dict] = {}
    for (task, role, family), g in asked.groupby(["task", "role", "family"], sort=False, dropna=False):
        for i, (_, r) in enumerate(g.iterrows()):
            if role == "premise":
                question = "KD's premise (the best fixed-weight KD on dev v `ce`)"
            elif role == "table1":
                question = "Table 1's finding (the best single-teacher student on dev v the strongest teacher's)"
            elif i == 0 and r.b == baseline:  # the strongest on dev is the declared baseline: one test answers both
                for question in (f"`{family}` v the strongest baseline on dev", f"`{family}` v `{baseline}`"):
                    answers.setdefault(question, {})[task] = r
                continue
            else:
                question = f"`{family}` v " + ("the strongest baseline on dev" if i == 0 else f"`{baseline}`")
            answers.setdefault(question, {})[task] = r
    out = []
    for question, by_task in answers.items():
        said = ", ".join(f"`{r.verdict}` on `{task}` ({pp(r['diff'])})" for task, r in by_task.items())
        verdicts = {r.verdict for r in by_task.values()}
        if len(by_task) < sig.task.nunique():
            how = "not asked on every task"
        elif all(v.startswith("not tested") for v in verdicts):  # one seed: nothing to agree on yet
            how = "no task has tested it yet"
        elif {"better", "worse"} <= verdicts:
            wins = [t for t, r in by_task.items() if r.verdict == "better"]
            loses = [t for t, r in by_task.items() if r.verdict == "worse"]
            how = f"the tasks disagree: it wins on {', '.join(wins)} and loses on {', '.join(loses)}"
        else:
            how = "the tasks agree" if len(verdicts) == 1 else "the tasks differ"
        out.append(f"Across tasks, {question}: {said}; {how}.")
    return out


def read_verdict(sig: pd.DataFrame, cfg, kinds: dict | None = None) -> str:
    """The report's first section: per task, the answers to the declared questions, with their power."""
    if sig.empty:
        return f"No other method ran, so there is nothing to compare `{cfg.reference}` with."
    out = [s for task, t in sig.groupby("task", sort=False) for s in verdict_sentences(task, t, cfg, kinds)]
    out += agreement(sig, cfg.baseline)
    if cfg.declared:
        out.append(cfg.declared.strip())
    out.append(
        "Each comparison is a t test over seeds that also counts test sampling (docs/statistics.md); "
        f"`equivalent` needs the whole {100 * cfg.confidence:.0f}% interval within {cfg.gap:g} pp either way, "
        "`degenerate` marks a comparison that cannot say anything (no variance, or teachers no better than the "
        "majority class), and anything else that does not reject is `inconclusive`. Each agent's two primary "
        "comparisons are Holm-corrected together; KD's premise and Table 1's finding are tested at the full level; the "
        "secondary comparisons are tested only once a primary one rejects."
    )
    return " ".join(out)


def read_significance(sig: pd.DataFrame, cfg) -> str:
    if sig.empty:
        return f"No other method ran, so there is nothing to compare `{cfg.reference}` with."
    out = [
        f"Each verdict comes from a t test on S - 1 degrees of freedom (S seeds) whose standard error counts both "
        f"sources of chance: training randomness (seeds) and test sampling (test examples, or the groups that hold "
        f"them, such as `rt`'s movies). The primary comparison and KD's premise are each tested at "
        f"{cfg.significance}; the primary one is the gatekeeper of the secondary family, which is tested (Holm "
        "within each task) only once it rejects. A "
        f"comparison that does not reject is `equivalent` only if its whole {100 * cfg.confidence:.0f}% interval "
        f"lies within {cfg.gap:g} pp either way, else `inconclusive`. The detectable difference has its one-sided "
        "95% upper bound beside it: at few seeds the seed variance, and with it the power, is barely known."
    ]
    for task, t in sig.groupby("task", sort=False):
        second = t[t.role == "secondary"]
        if second.empty:
            continue
        if (second.gate == "closed").all():
            out.append(
                f"On `{task}` the primary comparison did not reject, so its {len(second)} secondary comparisons are "
                "reported, not tested."
            )
            continue
        hits = second[second.verdict.str.startswith(("better", "worse"))]
        out.append(
            f"{len(hits)} of {len(second)} secondary comparisons on `{task}` are significant"
            + (
                ": " + "; ".join(f"`{r.a}` - `{r.b}` {pp(r['diff'])} ({r.verdict})" for _, r in hits.iterrows())
                if len(hits)
                else ""
            )
            + f"; {count(int(second.verdict.str.startswith('inconclusive').sum()), 'is', 'are')} inconclusive."
        )
    if int(sig.seeds.max()) == 1:
        out.append("With one seed the seed-to-seed variance is unknown: nothing is tested, and no power is given.")
    out.append("The paired t-test and Wilcoxon on per-seed accuracies stand beside each verdict without deciding it.")
    return " ".join(out)


def test_set_effect(t: pd.DataFrame, now) -> str:
    """What halving and doubling the test set does to the detectable difference at the measured seeds."""
    at = t[t.seeds == now.seeds].set_index("multiple").mdd
    half, double = at.get(0.5), at.get(2)
    if half is None or double is None or not now.mdd > 0:  # no variance (a degenerate comparison): no ratio to say
        return ""
    said = f"Half the test set would detect {100 * half:.1f} pp, twice the test set {100 * double:.1f}"
    lever = max(half / now.mdd - 1, 1 - double / now.mdd) < 0.1  # within 10%: the test set is not the lever
    return said + (": seeds, not test examples, are the lever." if lever else ".")


def read_power(power: pd.DataFrame, cfg) -> str:
    if power.empty:
        return "No power to report: it needs the primary comparison over two seeds or more."
    out = []
    for task, t in power.groupby("task", sort=False):
        now = t[t.measured].iloc[0]
        enough = t[(t.mdd <= cfg.gap / 100) & (t.examples == now.examples)]
        safe = t[(t.mdd_upper <= cfg.gap / 100) & (t.examples == now.examples)]
        plan = f"{cfg.gap:g} pp at this test set needs " + (
            f"about {int(enough.seeds.min())} seeds by the estimate"
            + (
                f", {int(safe.seeds.min())} by its upper bound"
                if len(safe)
                else f", more than {int(t.seeds.max())} by its upper bound"
            )
            if len(enough)
            else f"more than {int(t.seeds.max())} seeds"
        )
        out.append(
            f"On `{task}` ({now.comparison}), with {int(now.seeds)} seeds and {int(now.examples):,} test examples, "
            f"the primary comparison detects {100 * now.mdd:.1f} pp (95% upper bound {100 * now.mdd_upper:.1f}) "
            f"with {100 * cfg.power:.0f}% power at {cfg.significance}; {plan} (about "
            f"{t[t.seeds == (enough.seeds.min() if len(enough) else t.seeds.max())].minutes.iloc[0]:.0f} training "
            f"minutes). {test_set_effect(t, now)}"
        )
    return " ".join(out) + (
        " Minutes count the training of every method once per seed on this machine, not the teachers or the "
        "overhead of each run."
    )
