"""The ledger: what a run did and on what evidence, rendered from the event log, the run state and the map.

Per node a gates table (check | status | evidence), the hop log (dispatch → commit → checks → review →
merge, with attempt numbers), decisions, cost and time; per region its L2 stage; the L3 stage and the
benchmark against ``known_optimal``; a summary of verified / not verified / risks. Markdown first; HTML is
the same document converted.
"""

from __future__ import annotations

import re
import time
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from ..map.errors import UsageError
from ..map.files import LeavesRoot, inside
from ..map.store import FOREMAN_DIR
from .events import read_events
from .project import Project
from .report_html import to_html
from .runstate import RunState, RunStore
from .timeline import LEGEND, timeline_svg

Record = dict[str, Any]


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts).strftime("%H:%M:%S")


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ").strip() or "—"


def _evidence(detail: Record) -> str:
    parts = []
    if detail.get("cmd"):
        parts.append(f"`{detail['cmd']}`")
    if detail.get("status") != "skipped":
        parts.append(f"{detail.get('duration', 0):.1f} s")
    if detail.get("exit_code") is not None:
        parts.append(f"exit {detail['exit_code']}")
    if detail.get("reason"):
        parts.append(detail["reason"])
    tail = [line for line in str(detail.get("output_tail") or "").splitlines() if line.strip()]
    if tail and detail.get("status") == "fail":
        parts.append("output: " + " ⏎ ".join(tail[-3:])[:300])
    return " · ".join(parts)


def _status(detail: Record) -> str:
    return str(detail["status"])


class Ledger:
    def __init__(self, project: Project) -> None:
        self.project = project
        home = project.doc.project_dir / FOREMAN_DIR
        self.events = list(read_events(home / "events.jsonl"))
        self.run: RunState = RunStore(home).load() or RunState()
        self.by_node: dict[str, list[Record]] = defaultdict(list)
        for event in self.events:
            self.by_node[event.get("node") or "run"].append(event)

    # ------------------------------------------------------------------------------------------ data

    def gates(self, node: str) -> list[tuple[str, str, str]]:
        """(check, status, evidence): the last result of every check of ``node``, then its review."""
        last: dict[str, Record] = {}
        for event in self.by_node.get(node, []):
            if event["kind"] == "CheckFinished":
                detail = event["detail"]
                last[f"{detail['level']} {detail['check']}"] = detail
        rows = [(f"{name} {d['desc']}", _status(d), _evidence(d)) for name, d in last.items()]
        reviews = [e["detail"] for e in self.by_node.get(node, []) if e["kind"] == "ReviewFinished"]
        if reviews:
            review = reviews[-1]
            rows.append(("review", review["verdict"], f"round {review['round']}: {review['text']}"))
        return rows

    def hops(self, node: str) -> list[str]:
        retries = self.project.settings.retries + 1
        out: list[str] = []
        cause_cap = 3
        round_start = last_attempt = 0  # a reset or a decision starts a new round of attempts
        checks: Counter[str] = Counter()
        for event in self.by_node.get(node, []):
            kind, d, at = event["kind"], event["detail"], _clock(event["ts"])
            if kind == "CheckFinished":
                checks[d["status"]] += 1
                continue
            if checks:
                out.append(f"{at} checks: " + ", ".join(f"{n} {status}" for status, n in sorted(checks.items())))
                checks.clear()
            if kind == "WorkerStarted" and d["role"] == "worker":
                attempt = d["attempt"] - round_start
                bound = f"/{cause_cap}" if 1 < attempt <= cause_cap else ""
                out.append(f"{at} dispatch (attempt {attempt}{bound})" + (" — resumed session" if d["resume"] else ""))
                last_attempt = d["attempt"]
            elif kind == "AttemptFailed":
                cause_cap = retries
                out.append(f"{at} attempt {d['attempt']} failed: {d['reason']}")
            elif kind == "AgentStopped":
                out.append(f"{at} {d['role']} {'stalled' if d['reason'] == 'stalled' else 'lingered after its result'}")
            elif kind == "RateLimited":
                out.append(f"{at} {d['role']} rate limited, retried after {d['wait']:.0f} s: {d['reason'][:120]}")
            elif kind == "CommitDetected":
                out.append(f"{at} commit {d['sha'][:10]} ({d['detected_by']}): {d['subject']}")
            elif kind == "FixTaskSent":
                cause_cap = self.project.settings.review_rounds if "review" in d["reason"] else 3
                out.append(f"{at} fix task for attempt {d['attempt']}: {d['reason']}")
            elif kind == "ReviewFinished":
                out.append(f"{at} review round {d['round']}: {d['text'] or d['verdict']}")
            elif kind == "NodeMerged":
                out.append(f"{at} merged {d['branch']} ({d['sha'][:10]})")
            elif kind == "MergeConflicted":
                out.append(f"{at} merge conflict in {', '.join(d['files'])}")
            elif kind == "FeedbackRouted":
                out.append(f"{at} feedback {d['routed_as']}: {d['note']}")
            elif kind == "ScopeViolated":
                out.append(f"{at} scope: changed {', '.join(d['files'])} outside its files")
            elif kind == "NodePaused":
                out.append(f"{at} PAUSED [{d['trigger']}] {d['problem']}")
            elif kind == "DecisionRecorded":
                round_start = last_attempt
                out.append(f"{at} decision: {d['option'] or 'instruction'} {d['label']} {d['text']}".rstrip())
            elif kind == "ContractChanged":
                out.append(f"{at} post condition added (decided at {d['by']}): {d['text']}")
            elif kind in ("NodeVerified", "NodeFailed", "NodeReset", "NodeRecovered", "NodeStale"):
                if kind == "NodeReset":
                    round_start = last_attempt
                why = f": {d['reason']}" if d.get("reason") else ""
                out.append(f"{at} {kind.removeprefix('Node').lower()}{why}")
        if checks:
            out.append("checks: " + ", ".join(f"{n} {status}" for status, n in sorted(checks.items())))
        return out

    def cost_and_time(self, node: str) -> tuple[float | None, float | None]:
        events = self.by_node.get(node, [])
        costs = [e["detail"]["cost_usd"] for e in events if e["kind"] == "AgentReported" and e["detail"]["cost_usd"]]
        starts = [e["ts"] for e in events if e["kind"] == "WorkerStarted"]
        ends = [e["ts"] for e in events if e["kind"] in ("NodeVerified", "NodePaused", "NodeFailed")]
        spent = (max(ends) - min(starts)) if starts and ends and max(ends) >= min(starts) else None
        return (sum(costs) if costs else None), spent

    def status(self, node: str) -> str:
        run = self.run.nodes.get(node)
        if run is not None and run.phase in ("paused", "failed"):
            return f"{run.phase} [{run.pause.trigger}]" if run.pause else run.phase
        return self.project.status_of(node)

    # ---------------------------------------------------------------------------------------- render

    def markdown(self) -> str:
        project, graph = self.project, self.project.graph
        finished = [e for e in self.events if e["kind"] == "RunFinished"]
        outcome = finished[-1]["detail"]["outcome"] if finished else "not run yet"
        lines = [
            f"# foreman report — {project.doc.model.meta.title}",
            "",
            f"Map: `{project.doc.source}` · generated {time.strftime('%Y-%m-%d %H:%M')} · last run: {outcome}",
            "",
        ]
        lines += self._summary()
        for node in graph.process_order:
            lines += self._node_section(node)
        for region in graph.regions:
            key = f"region:{region.key}"
            lines += ["", f'## Region "{region.label}" (L2)', "", f"Stage: {self.run.stages.get(key, 'not run')}", ""]
            lines += self._table([(c, s, e) for c, s, e in self.gates(key)])
            lines += self._diagnosis(key)
        lines += self._feedback()
        lines += ["", "## End (L3) and benchmark", "", f"Stage: {self.run.stages.get('end', 'not run')}", ""]
        lines += self._table(self.gates("end"))
        lines += self._diagnosis("end")
        bench = project.doc.model.meta.benchmark
        ran = [e["detail"] for e in self.by_node.get("end", []) if e["kind"] == "BenchmarkRan"]
        if bench is not None:
            lines.append("")
            if ran:
                b = ran[-1]
                verdict = "pass" if b["passed"] else "FAIL"
                lines.append(
                    f"Benchmark `{b['cmd']}`: value {b['value']} vs known optimal {b['known_optimal']} → {verdict}"
                )
            else:
                lines.append(f"Benchmark {bench.file or ''}: not run (known optimal {bench.known_optimal})")
        return "\n".join(lines).rstrip() + "\n"

    def _feedback(self) -> list[str]:
        """Feedback notes on the flow chart, and those that reached no node (the rest is in each node's hops)."""
        notes = [
            e
            for e in self.events
            if e["kind"] == "FeedbackRouted" and ("flow" in e["detail"]["routed_as"] or e["node"] is None)
        ]
        if not notes:
            return []
        lines = ["", "## Feedback on the flow chart and not routed", ""]
        for e in notes:
            d = e["detail"]
            where = f"## {d.get('section')}" if d.get("section") else d["file"]
            lines.append(f"- {_clock(e['ts'])} ({where}) {d['routed_as']}: {d['note']}")
        return lines

    def _summary(self) -> list[str]:
        graph = self.project.graph
        verified = [n for n in graph.process_order if self.project.status_of(n) == "verified"]
        others = [n for n in graph.process_order if n not in verified]
        risks = []
        for node in graph.process_order:
            for event in self.by_node.get(node, []):
                d = event["detail"]
                if event["kind"] == "ScopeViolated":
                    risks.append(f"`{node}` changed files outside its scope: {', '.join(d['files'])}")
                elif event["kind"] == "DisputeRaised":
                    risks.append(f"`{node}` disputes {d['check']} ({d['desc']}): {d['reason']}")
            run = self.run.nodes.get(node)
            if run is not None and run.accepted:
                risks.append(f"`{node}`: failing checks accepted by a person: {', '.join(run.accepted)}")
            skipped = [g for g in self.gates(node) if g[1].startswith("skipped")]
            if skipped:
                risks.append(f"`{node}`: {len(skipped)} check(s) without a command (self-reported or unchecked)")
        for key, value in self.run.stages.items():
            if value == "accepted":
                risks.append(f"{key}: failing checks accepted by a person")
        lines = [
            "## Summary",
            "",
            f"- Verified: {len(verified)}/{len(graph.process_order)} process nodes"
            + (f" ({', '.join(verified)})" if verified else ""),
        ]
        if others:
            lines.append("- Not verified: " + ", ".join(f"{n} ({self.status(n)})" for n in others))
        for key, run in self.run.nodes.items():
            if run.phase == "paused" and run.pause and key not in graph.process_order:
                lines.append(f"- Paused: {key} [{run.pause.trigger}] {run.pause.problem}")
            if run.phase == "failed":
                failed = [e["detail"] for e in self.by_node.get(key, []) if e["kind"] == "NodeFailed"]
                why = failed[-1]["reason"] if failed else "marked failed"
                stopped = ", ".join(failed[-1]["dependants"]) if failed and failed[-1]["dependants"] else "none"
                lines.append(f"- Failed: {key} — {why}; its dependants were stopped: {stopped}")
        budget = self.project.settings.budget_usd
        budget_text = f" of a ${budget + self.run.budget_raised:.2f} budget" if budget is not None else ""
        lines.append(f"- Spend: ${self.run.spent():.4f}{budget_text}")
        lines.append("- Risks: " + ("none recorded" if not risks else ""))
        lines += [f"  - {r}" for r in risks]
        return [*lines, ""]

    def _node_section(self, node: str) -> list[str]:
        label = self.project.graph.labels[node]
        cost, spent = self.cost_and_time(node)
        facts = [f"status: {self.status(node)}"]
        if cost is not None:
            facts.append(f"cost: ${cost:.4f}")
        used = [e["detail"].get("tokens") or {} for e in self.by_node.get(node, []) if e["kind"] == "AgentReported"]
        if any(used):
            total = {k: sum(t.get(k, 0) for t in used) for k in ("input", "cached_input", "output")}
            facts.append(f"tokens: {total['input']:,} in ({total['cached_input']:,} cached), {total['output']:,} out")
        if spent is not None:
            facts.append(f"time: {spent:.1f} s")
        lines = ["", f"## Node `{node}` — {label}", "", " · ".join(facts), "", "### Gates", ""]
        lines += self._table(self.gates(node))
        hops = self.hops(node)
        lines += ["", "### Hop log", ""] + ([f"- {h}" for h in hops] or ["- (no activity)"])
        decisions = [d for d in self.run.decisions if d.node == node]
        if decisions:
            lines += ["", "### Decisions", ""]
            for d in decisions:
                chosen = f"{d.option}) {d.label}" if d.option else "instruction"
                lines.append(f"- {_clock(d.at)} {d.who}: {chosen}" + (f" — “{d.text}”" if d.text else ""))
        return lines

    def _diagnosis(self, key: str) -> list[str]:
        found = [e["detail"] for e in self.by_node.get(key, []) if e["kind"] == "DiagnosisMade"]
        if not found:
            return []
        d = found[-1]
        return [
            "",
            f"Diagnosis: first suspicious node **{d['suspect'] or 'none'}**",
            *[f"- {f}" for f in d["findings"]],
        ]

    @staticmethod
    def _table(rows: list[tuple[str, str, str]]) -> list[str]:
        if not rows:
            return ["(no checks ran)"]
        out = ["| check | status | evidence |", "|---|---|---|"]
        out += [f"| {_cell(c)} | {_cell(s)} | {_cell(e)} |" for c, s, e in rows]
        return out

    def change_log_entries(self, existing: str) -> str:
        """Entries for verified nodes not yet in the target project's change log."""
        out = []
        for node in self.project.graph.process_order:
            marker = f"<!-- foreman:{node} -->"
            if self.project.status_of(node) != "verified" or marker in existing:
                continue
            merged = [e for e in self.by_node.get(node, []) if e["kind"] == "NodeMerged"]
            when = time.strftime("%Y-%m-%d", time.localtime(merged[-1]["ts"])) if merged else time.strftime("%Y-%m-%d")
            files = ", ".join(f"`{f}`" for f in self.project.owned[node].files) or "(no files declared)"
            out.append(
                f"\n## {when} — {node}: {self.project.graph.labels[node]} {marker}\n\n"
                f"Verified by foreman: checks and review passed. Files: {files}.\n"
            )
        return "".join(out)


def parse_gates(markdown: str) -> dict[str, dict[str, str]]:
    """Read the gates tables back: node → {check: status}. (For checking a report against the event log.)"""
    result: dict[str, dict[str, str]] = {}
    node = None
    in_gates = False
    for line in markdown.splitlines():
        head = re.match(r"^## Node `([^`]+)`", line)
        if head:
            node, in_gates = head.group(1), False
            result[node] = {}
        elif line.startswith("### "):
            in_gates = line.strip() == "### Gates"
        elif line.startswith("## "):
            node = None
        elif node and in_gates and line.startswith("| ") and not line.startswith(("| check", "|---")):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            result[node][cells[0]] = cells[1]
    return result


def write_report(project: Project, fmt: str, output: Path | None, change_log: bool) -> str:
    ledger = Ledger(project)
    text = ledger.markdown()
    if fmt == "html":
        svg = timeline_svg(ledger.events, list(project.graph.process_order))
        picture = f"<h2>Timeline</h2>\n{LEGEND}\n{svg}" if svg else ""
        text = to_html(text, f"foreman report — {project.doc.model.meta.title}", picture)
    if change_log:
        target = project.doc.project_dir / "docs" / "change_log.md"
        try:
            inside(target, project.doc.project_dir)  # the map's project is someone's: never write through a link out
        except LeavesRoot as exc:
            raise UsageError(f"not writing the change log: {exc}") from None
        existing = target.read_text(encoding="utf-8") if target.exists() else "# Change log\n"
        entries = ledger.change_log_entries(existing)
        if entries:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(existing.rstrip("\n") + "\n" + entries, encoding="utf-8")
    if output is not None:
        output.write_text(text, encoding="utf-8")
    return text
