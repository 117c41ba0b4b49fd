"""Sim-to-real reports from trial stores: JSON, Markdown, self-contained HTML, terminal table.

Arms are (bundle name + policy.onnx sha256, setting). Per arm: success with 95% Wilson and
Clopper-Pearson intervals, the per-phase funnel, failure modes. Per bundle and pair of settings
(sim -> sim_in_the_loop -> hardware): the gap p_a - p_b with its Newcombe interval, Fisher's
exact p-value and the trials per arm that would resolve a gap of that size. With >= 3 bundles in
two settings: rank agreement (Pearson, MMRV). All trials must be of one task.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dppo_robot.sim2real import stats as S
from dppo_robot.sim2real.records import SETTINGS, LoadedTrials, TrialError, TrialRecord, load_trials

ROLLOUTS_HEADING = "## Rollouts"


@dataclass
class Arm:
    bundle: str
    sha256: str
    setting: str
    records: list[TrialRecord]

    @property
    def key(self) -> str:
        return f"{self.bundle}@{self.sha256[:8]}/{self.setting}"


def _check_one_task(loaded: LoadedTrials) -> str:
    tasks: dict[str, list[str]] = defaultdict(list)
    for i, r in enumerate(loaded.records):
        src = str(loaded.sources[i])
        if src not in tasks[r.task]:
            tasks[r.task].append(src)
    if not tasks:
        raise TrialError("no trial records to report (n = 0): the stores are empty")
    if len(tasks) > 1:
        parts = "; ".join(f"task '{t}' in {', '.join(srcs)}" for t, srcs in sorted(tasks.items()))
        raise TrialError(f"trials of different tasks cannot be compared in one report: {parts}")
    return next(iter(tasks))


def _phase_names(loaded: LoadedTrials) -> list[str]:
    """The phase names every record of the comparison shares (else an error naming both places)."""
    first = list(loaded.records[0].phase_names)
    for i, r in enumerate(loaded.records):
        if list(r.phase_names) != first:
            raise TrialError(
                f"phase names {first} at {loaded.where(0)} and {list(r.phase_names)} at {loaded.where(i)} differ: "
                "records of one comparison must share the task's phases"
            )
    return first


def arms_of(records: list[TrialRecord]) -> list[Arm]:
    groups: dict[tuple[str, str, str], list[TrialRecord]] = defaultdict(list)
    for r in records:
        groups[(r.bundle_name, r.bundle_sha256, r.setting)].append(r)
    order = {s: i for i, s in enumerate(SETTINGS)}
    keys = sorted(groups, key=lambda k: (k[0], k[1], order[k[2]]))
    return [Arm(b, h, s, groups[(b, h, s)]) for b, h, s in keys]


def analyse(loaded: LoadedTrials, confidence: float = 0.95, power: float = 0.8) -> dict[str, Any]:
    """The report's content as JSON-able data."""
    task = _check_one_task(loaded)
    names = _phase_names(loaded)
    arms = arms_of(loaded.records)
    out: dict[str, Any] = {
        "task": task,
        "confidence": confidence,
        "sources": sorted({str(s) for s in loaded.sources}),
        "phase_names": names,
        "randomness": sorted({r.randomness for r in loaded.records}),
        "arms": [],
        "comparisons": [],
        "rank_agreement": [],
        "notes": [],
    }
    if len(out["randomness"]) > 1:
        out["notes"].append(f"trials mix randomness levels {out['randomness']}")
    by_key: dict[tuple[str, str, str], Arm] = {}
    for a in arms:
        by_key[(a.bundle, a.sha256, a.setting)] = a
        k = sum(r.success for r in a.records)
        n = len(a.records)
        funnel = S.phase_funnel([r.phase_reached for r in a.records], names, confidence)
        out["arms"].append(
            {
                "bundle": a.bundle,
                "sha256": a.sha256,
                "setting": a.setting,
                "key": a.key,
                **S.rate(k, n, confidence).as_dict(),
                "funnel": [f.as_dict() for f in funnel],
                "failure_modes": dict(Counter(r.failure_mode for r in a.records if not r.success).most_common()),
                "phase_disagreements": sum(r.phase_disagreement for r in a.records),
                "mean_duration_s": sum(r.duration_s for r in a.records) / n,
            }
        )
    bundles = sorted({(a.bundle, a.sha256) for a in arms})
    pairs = [(SETTINGS[i], SETTINGS[j]) for i in range(len(SETTINGS)) for j in range(i + 1, len(SETTINGS))]
    for b, h in bundles:
        for sa, sb in pairs:
            a1, a2 = by_key.get((b, h, sa)), by_key.get((b, h, sb))
            if a1 is None or a2 is None:
                continue
            k1, n1 = sum(r.success for r in a1.records), len(a1.records)
            k2, n2 = sum(r.success for r in a2.records), len(a2.records)
            d = S.compare(k1, n1, k2, n2, confidence)
            comp = {"bundle": b, "sha256": h, "from": sa, "to": sb, "from_rate": k1 / n1, "to_rate": k2 / n2}
            comp.update(d.as_dict())
            comp["plan"] = None
            if k1 / n1 != k2 / n2:
                comp["plan"] = S.plan_trials(k1 / n1, k2 / n2, 1 - confidence, power, max_n=200).as_dict()
            out["comparisons"].append(comp)
    for sa, sb in pairs:
        common = [(b, h) for b, h in bundles if (b, h, sa) in by_key and (b, h, sb) in by_key]
        if len(common) < 2:
            continue
        if len(common) < S.MIN_POLICIES_FOR_RANKS:
            out["notes"].append(
                f"rank agreement {sa} vs {sb}: needs >= {S.MIN_POLICIES_FOR_RANKS} policies in both, have {len(common)}"
            )
            continue

        def rate_of(b: str, h: str, s: str) -> float:
            recs = by_key[(b, h, s)].records
            return sum(r.success for r in recs) / len(recs)

        ra = S.rank_agreement(
            [f"{b}@{h[:8]}" for b, h in common],
            [rate_of(b, h, sa) for b, h in common],
            [rate_of(b, h, sb) for b, h in common],
        )
        out["rank_agreement"].append({"from": sa, "to": sb, **ra.as_dict()})
    return out


# ------------------------------------------------------------------------------------- plots
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


COLORS = {"sim": "#1f77b4", "sim_in_the_loop": "#ff7f0e", "hardware": "#2ca02c"}


def plot_success(data: dict) -> str:
    import matplotlib.pyplot as plt

    arms = data["arms"]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(arms) + 1.4))
    for y, a in enumerate(arms):
        lo, hi = a["wilson"]
        clo, chi = a["clopper_pearson"]
        c = COLORS[a["setting"]]
        ax.plot([clo, chi], [y, y], color=c, alpha=0.35, lw=8, solid_capstyle="butt")
        ax.errorbar(a["rate"], y, xerr=[[a["rate"] - lo], [hi - a["rate"]]], fmt="o", color=c, capsize=5, lw=2)
        ax.text(1.02, y, f"{a['successes']}/{a['trials']}", va="center", fontsize=9)
    ax.set_yticks(range(len(arms)), [a["key"] for a in arms], fontsize=8)
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel(f"success rate (bar: {data['confidence']:.0%} Wilson; band: Clopper-Pearson)")
    ax.set_title(f"Success: {data['task']}")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_funnel(data: dict) -> str:
    import matplotlib.pyplot as plt

    names = data["phase_names"][1:]
    fig, ax = plt.subplots(figsize=(7, 3.6))
    n_arms = len(data["arms"])
    for j, a in enumerate(data["arms"]):
        xs = [s["phase"] + (j - (n_arms - 1) / 2) * 0.06 for s in a["funnel"]]
        ys = [s["rate"] for s in a["funnel"]]
        err = [
            [y - s["wilson"][0] for y, s in zip(ys, a["funnel"])],
            [s["wilson"][1] - y for y, s in zip(ys, a["funnel"])],
        ]
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=a["key"], color=COLORS[a["setting"]],
                    linestyle=["-", "--", ":", "-."][j % 4])  # fmt: skip
    ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction reaching phase")
    ax.set_title("Phase funnel (highest phase reached, Wilson intervals)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return _png(fig)


def plot_sim_vs_real(data: dict) -> str | None:
    import matplotlib.pyplot as plt

    comps = data["comparisons"]
    if not comps:
        return None
    arms = {(a["bundle"], a["sha256"], a["setting"]): a for a in data["arms"]}
    fig, ax = plt.subplots(figsize=(4.6, 4.6))
    ax.plot([0, 1], [0, 1], color="gray", lw=1, ls="--", label="no gap")
    for c in comps:
        a, b = arms[(c["bundle"], c["sha256"], c["from"])], arms[(c["bundle"], c["sha256"], c["to"])]
        x, y = a["rate"], b["rate"]
        ax.errorbar(
            x, y,
            xerr=[[x - a["wilson"][0]], [a["wilson"][1] - x]],
            yerr=[[y - b["wilson"][0]], [b["wilson"][1] - y]],
            fmt="s", capsize=4, color=COLORS[c["to"]], label=f"{c['bundle']}: {c['from']} vs {c['to']}",
        )  # fmt: skip
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("success in the more simulated setting")
    ax.set_ylabel("success in the more real setting")
    ax.set_title("Sim vs real")
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3)
    return _png(fig)


# ----------------------------------------------------------------------------------- writers
def _fmt_ci(ci: list[float]) -> str:
    return f"[{ci[0]:.3f}, {ci[1]:.3f}]"


def _p(p: float) -> str:
    return f"{p:.3g}"


def markdown(data: dict) -> str:
    L = [f"# Sim-to-real report: {data['task']}", ""]
    L.append(f"Sources: {', '.join(data['sources'])}  ")
    L.append(f"Intervals: {data['confidence']:.0%}. Phases: {', '.join(data['phase_names'])}")
    L += ["", "## Success", "", "| policy | setting | successes | rate | Wilson | Clopper-Pearson | disagreements |"]
    L.append("|---|---|---|---|---|---|---|")
    for a in data["arms"]:
        L.append(
            f"| {a['bundle']} ({a['sha256'][:8]}) | {a['setting']} | {a['successes']}/{a['trials']} | "
            f"{a['rate']:.3f} | "
            f"{_fmt_ci(a['wilson'])} | {_fmt_ci(a['clopper_pearson'])} | {a['phase_disagreements']} |"
        )
    L += ["", "## Phase funnel (trials reaching at least each phase)", ""]
    L.append("| policy / setting | " + " | ".join(data["phase_names"][1:]) + " |")
    L.append("|---|" + "---|" * (len(data["phase_names"]) - 1))
    for a in data["arms"]:
        L.append(f"| {a['key']} | " + " | ".join(f"{s['reached']}/{s['trials']}" for s in a["funnel"]) + " |")
    L += ["", "## Sim-to-real gap", ""]
    if data["comparisons"]:
        L.append("| policy | from -> to | rates | gap | Newcombe | Fisher p | resolved | trials/arm to resolve |")
        L.append("|---|---|---|---|---|---|---|---|")
        for c in data["comparisons"]:
            plan = c["plan"]
            need = "-" if plan is None else str(plan["n_fisher"] or f">200 (normal approx. {plan['n_normal']})")
            L.append(
                f"| {c['bundle']} | {c['from']} -> {c['to']} | {c['from_rate']:.3f} -> {c['to_rate']:.3f} | "
                f"{c['diff']:+.3f} | {_fmt_ci(c['newcombe'])} | {_p(c['fisher_p'])} | "
                f"{'yes' if c['resolved'] else 'no'} | {need} |"
            )
    else:
        L.append("No bundle has trials in two settings.")
    if data["rank_agreement"]:
        L += ["", "## Rank agreement", "", "| from -> to | policies | Pearson | MMRV |", "|---|---|---|---|"]
        for r in data["rank_agreement"]:
            L.append(f"| {r['from']} -> {r['to']} | {len(r['policies'])} | {r['pearson']:.3f} | {r['mmrv']:.3f} |")
    fm = [(a["key"], a["failure_modes"]) for a in data["arms"] if a["failure_modes"]]
    if fm:
        L += ["", "## Failure modes", ""]
        for k, modes in fm:
            L.append(f"- {k}: " + ", ".join(f"{m or 'unlabelled'} x{c}" for m, c in modes.items()))
    if data["notes"]:
        L += ["", "## Notes", ""] + [f"- {n}" for n in data["notes"]]
    return "\n".join(L) + "\n"


def html_page(data: dict, md: str, rollouts: list | None = None) -> str:
    imgs = [("Success with intervals", plot_success(data)), ("Phase funnel", plot_funnel(data))]
    svr = plot_sim_vs_real(data)
    if svr is not None:
        imgs.append(("Sim vs real", svr))
    figs = "\n".join(
        f'<figure><img alt="{html.escape(t)}" src="data:image/png;base64,{b}">'
        f"<figcaption>{html.escape(t)}</figcaption></figure>"
        for t, b in imgs
    )
    strips = ""
    if rollouts:
        from dppo_robot.sim2real.keyframes import html_strips

        strips = "<h2>Rollouts (keyframes at each phase change)</h2>\n"
        strips += f'<div class="rollouts">{html_strips(rollouts)}</div>'
    body = _md_tables_to_html(md.split(ROLLOUTS_HEADING)[0])  # the HTML shows the images instead
    # title and sources first, then the plots and the rollouts, then the tables
    cut = body.find("<h2")
    head, rest = (body[:cut], body[cut:]) if cut > 0 else ("", body)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sim-to-real report: {html.escape(data["task"])}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }}
td, th {{ border: 1px solid #bbb; padding: 3px 8px; }} th {{ background: #eee; }}
figure {{ display: inline-block; margin: 8px; vertical-align: top; }} img {{ max-width: 640px; }}
figure.keyframe {{ margin: 2px; font-size: 11px; }} figure.keyframe img {{ width: 200px; }}
div.rollout p {{ margin: 6px 0 0; font-size: 13px; }}
</style></head><body>
{head}
<div class="plots">{figs}</div>
{strips}
{rest}
</body></html>
"""


def _md_tables_to_html(md: str) -> str:
    """The report's own Markdown (headings, tables, bullets, text) as HTML."""
    out, rows = [], []

    def flush() -> None:
        if rows:
            head, *rest = rows
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rest)
            out.append("</table>")
            rows.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if not all(set(c) <= {"-"} for c in cells):
                rows.append(cells)
            continue
        flush()
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            out.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    flush()
    return "\n".join(out)


def rich_table(data: dict) -> Any:
    from rich.table import Table

    t = Table(title=f"{data['task']}: success ({data['confidence']:.0%} intervals)")
    for col in ("policy", "setting", "k/n", "rate", "Wilson", "Clopper-Pearson"):
        t.add_column(col)
    for a in data["arms"]:
        t.add_row(
            f"{a['bundle']} ({a['sha256'][:8]})", a["setting"], f"{a['successes']}/{a['trials']}", f"{a['rate']:.3f}",
            _fmt_ci(a["wilson"]), _fmt_ci(a["clopper_pearson"]),
        )  # fmt: skip
    if not data.get("comparisons"):
        return t
    from rich.console import Group

    g = Table(title="gap between settings (same policy)")
    for col in ("policy", "from -> to", "gap (from - to)", "Newcombe", "Fisher p", "resolved", "trials/arm to resolve"):
        g.add_column(col)
    for c in data["comparisons"]:
        plan = c.get("plan")
        need = "" if plan is None else str(plan["n_fisher"] or f">200 (normal approx. {plan['n_normal']})")
        g.add_row(
            f"{c['bundle']} ({c['sha256'][:8]})", f"{c['from']} -> {c['to']}", f"{c['diff']:+.3f}",
            _fmt_ci(c["newcombe"]), f"{c['fisher_p']:.3g}", "yes" if c["resolved"] else "no",
            need,
        )  # fmt: skip
    return Group(t, g)


def rollouts_markdown(summaries: list[dict]) -> str:
    """The rollouts section of report.md: one line per rollout, its keyframes as image links."""
    L = ["", ROLLOUTS_HEADING, ""]
    for r in summaries:
        verdict = "success" if r["success"] else f"stopped after {r['phase_name']}"
        L.append(f"- {r['arm']}, seed {r['seed']}: {verdict}, {r['steps']} steps")
        L.append("  " + " ".join(f"![{f['caption']}]({f['file']})" for f in r["frames"]))
    return "\n".join(L) + "\n"


def write_report(
    paths: list[str | Path], out_dir: str | Path, confidence: float = 0.95, rollouts: list | None = None
) -> dict[str, Path]:
    """Read the stores, analyse, and write report.json / report.md / report.html into out_dir.

    rollouts (sim2real.keyframes.Rollout): rendered episodes shown as keyframe strips in the HTML,
    written as PNGs under out_dir/keyframes/ and linked from the Markdown.
    """
    import matplotlib

    matplotlib.use("Agg")
    data = analyse(load_trials(paths), confidence)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    md = markdown(data)
    if rollouts:
        from dppo_robot.sim2real.keyframes import save_keyframes

        data["rollouts"] = save_keyframes(rollouts, out)
        md += rollouts_markdown(data["rollouts"])
    files = {"json": out / "report.json", "markdown": out / "report.md", "html": out / "report.html"}
    files["json"].write_text(json.dumps(data, indent=2))
    files["markdown"].write_text(md)
    files["html"].write_text(html_page(data, md, rollouts))
    return files
