"""The planted benchmark's tables: per design and setting, and per seed."""

from __future__ import annotations

from .runner import BASELINES, FAR, MIN_GAP, accuracy

# the code column of a row run before rows named their commit: before issue 28's fixes (every student on the same
# rows, pre-training never at learning rate 0), so not comparable with rows that name one
OLD = "before 28"


def table(designs: dict) -> str:
    rows = [
        "| design | setting | seeds gap met | seeds won | both | mean min-gap | mean acc diff | worst | far below | "
        "guard kept equal | " + " | ".join(f"v {m}: diff, won" for m in BASELINES) + " | code |",
        "|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(BASELINES) + "---|",
    ]

    def fmt(x, spec):
        return "-" if x is None else format(x, spec)

    for design, settings in designs.items():
        for name, entry in settings.items():
            s = entry["summary"]
            n = f"/{s['seeds']}" + (f" ({s['errors']} failed)" if s["errors"] else "")
            versus = s.get("versus", {})
            against = [
                f"{fmt(versus[m]['mean_acc_diff'], '+.4f')}, {versus[m]['seeds_won']}/{s['seeds']}"
                if versus.get(m, {}).get("mean_acc_diff") is not None
                else "-"
                for m in BASELINES
            ]
            rows.append(
                f"| {design} | {name} | {s['seeds_gap_met']}{n} | {s['seeds_won']}/{s['seeds']} | "
                f"{s['seeds_both']}/{s['seeds']} | {fmt(s['mean_min_gap'], '.3f')} | "
                f"{fmt(s['mean_acc_diff'], '+.4f')} | {fmt(s.get('worst_acc_diff'), '+.4f')} | "
                f"{fmt(s.get('seeds_far_below'), 'd')} | {fmt(s.get('guard_kept_equal'), 'd')} | "
                + " | ".join(against)
                + f" | {entry.get('commit', OLD)} |"
            )
    return "\n".join(rows)


def per_seed(designs: dict, setting: str = "effect_agent_ue_guard") -> str:
    """One row per design and seed for `setting`: each corrupted teacher's gap, the agent and equal weights."""
    rows = [
        "| design | seed | gaps (corrupted teachers) | agent | equal weights | "
        + " | ".join(BASELINES)
        + " | guard kept |",
        "|---|---|---|---|---|" + "---|" * len(BASELINES) + "---|",
    ]
    for design, settings in designs.items():
        for r in settings.get(setting, {}).get("runs", []):
            if "error" in r:
                rows.append(f"| {design} | {r['seed']} | failed: {r['error']} | | |")
                continue
            gaps_text = " / ".join(f"{g:.2f}" for g in r["gaps"].values())
            base = [f"{100 * r['baselines'][m]:.1f}" if m in r.get("baselines", {}) else "-" for m in BASELINES]
            rows.append(
                f"| {design} | {r['seed']} | {gaps_text} | {100 * accuracy(r):.1f} | {100 * r['u_ensemble']:.1f} | "
                + " | ".join(base)
                + f" | {r.get('guard', '-')} |"
            )
    return "\n".join(rows)


def markdown(designs: dict, command: str) -> str:
    """The page results/planted.md: written by this command, never edited by hand."""
    return (
        f"# Planted-teacher benchmark\n\nWritten by `{command}` (benchmarks/planted/; docs/rl-kd.md "
        f"explains the designs and the settings). A seed meets the gap when every corrupted teacher's "
        f"selection gap is >= {MIN_GAP}; it is won when the agent's test accuracy beats equal weights'. The `v` "
        f"columns compare the agent with the heuristic baselines {', '.join(BASELINES)} (mean test-accuracy "
        f"difference, seeds won); `worst`: the agent's worst seed against equal weights; `far below`: seeds more "
        f"than {100 * FAR:.0f} points under equal weights; `guard kept equal`: seeds where effect_agent's guard kept "
        "its equal-weights run "
        "(a dash: run without the guard). A dash elsewhere: not run with this setting's rows. `code`: the commit "
        f"a row ran at; `{OLD}`: an older run, "
        "before every student trained on the same rows and pre-training was fixed, not comparable with the others."
        "\n\n"
        f"{table(designs)}\n\n## Per seed, setting `effect_agent_ue_guard`\n\n{per_seed(designs)}\n"
    )
