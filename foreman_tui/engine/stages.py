"""Stages: a region's L2 checks once its process nodes are verified; the L3 checks and the benchmark once
every node is. They run in the main tree, write the owning nodes' ``verify_results``, and commit the map."""

from __future__ import annotations

import asyncio

from ..map.files import owner_name
from .checks import check_event
from .events import (
    BenchmarkRan,
    CheckFinished,
    DecisionVerified,
    DiagnosisMade,
    StageFinished,
)
from .pauses import DECISION_FAILED, L2_FAILED, L3_FAILED, Option, Pause
from .project import CheckRef
from .prompts import checkpoint_problem
from .staleness import Staleness
from .workspace import finish


class Stages(Staleness):
    async def _run_checks(self, owner: str, level: str, checks: list[CheckRef]) -> list[str]:
        """Run stage checks in the main tree; returns the failed check names."""
        failed = []
        results: dict[str, dict[str, list[bool | None]]] = {}
        for check in checks:
            name = f"{check.owner} {check.phase}[{check.index}]"
            if not check.runnable:
                self.emit(
                    CheckFinished(
                        node=owner, level=level, check=name, desc=check.item.desc, status="skipped", reason="no command"
                    )
                )
                continue
            log = (
                self.home
                / "logs"
                / owner_name(owner)
                / f"{level}-{owner_name(check.owner)}-{check.phase}{check.index}.log"
            )
            outcome = await self._run_cmd(check.item.cmd or "", self.project_dir, log, owner)
            self.emit(check_event(owner, level, name, check, outcome))
            if outcome.status == "fail":
                failed.append(name)
            if not check.owner.startswith("region:"):
                current = results.get(check.owner) or self._current_results(check.owner)
                current[check.phase][check.index] = outcome.status == "pass"
                results[check.owner] = current
        if results:
            await finish(self.ws.write_states, {n: {"verify_results": r} for n, r in results.items()})
        return failed

    def _current_results(self, node: str) -> dict[str, list[bool | None]]:
        content = self.project.doc.content(node)
        verify = content.verify if content is not None else None
        sizes = {phase: len(getattr(verify, phase)) if verify else 0 for phase in ("pre", "core", "post")}
        return self.ws.current_results(node, sizes)

    def _decision_has_checks(self, decision: str) -> bool:
        return any(c.runnable for c in self.project.decision_checks(decision))

    def _held_by_decisions(self) -> set[str]:
        """Process nodes after a decision whose checks have not passed (yet): they wait for it."""
        held: set[str] = set()
        for decision in self.graph.decision_feeders:
            if self._decision_has_checks(decision) and self.state.stages.get(f"decision:{decision}") not in (
                "passed",
                "accepted",
            ):
                held.update(self.graph.after(decision))
        return held

    async def _run_decision_stages(self, verified: set[str]) -> None:
        """A decision node's L1 checks, once every process node feeding it is verified; it is verified when
        they pass. A failure pauses it, naming its feeders as the suspects."""
        for decision, feeders in self.graph.decision_feeders.items():
            key = f"decision:{decision}"
            if key in self.state.nodes or not self._decision_has_checks(decision):
                continue
            result = self.state.stages.get(key)
            if result is None and self.graph.decision_verified(decision, verified):
                checks = self.project.decision_checks(decision)
                failed = await self._run_checks(key, "L1", checks)
                result = self.state.stages[key] = "failed" if failed else "passed"
                self.save()
                self.emit(StageFinished(node=key, stage="L1", passed=not failed, checks=len(checks), failed=failed))
                if failed:
                    self._pause_decision(key, decision, failed, feeders)
                    continue
            if result in ("passed", "accepted") and self.project.status_of(decision) != "verified":
                changes = {decision: {"status": "verified"}}
                await finish(self.ws.record, changes, f"foreman: {decision} verified (its checks {result})")
                self._refresh_statuses(changes)
                self.emit(DecisionVerified(node=decision, feeders=list(feeders)))

    def _pause_decision(self, key: str, decision: str, failed: list[str], feeders: tuple[str, ...]) -> None:
        suspects = ", ".join(feeders) or "no process node"
        options = [Option(key="A", label="re-run the checks", action="recheck")]
        options += [
            Option(key=chr(ord("B") + i), label=f"reset {n} (a suspect) and redo it", action="reset", target=n)
            for i, n in enumerate(feeders)
        ]
        options.append(Option(key=chr(ord("B") + len(feeders)), label="accept and go on", action="accept"))
        problem = f"{decision}'s checks failed: {', '.join(failed)}; the code feeding it is suspect: {suspects}"
        pause = Pause(
            node=key,
            trigger=DECISION_FAILED,
            problem=problem,
            options=options,
            suspect=feeders[-1] if feeders else None,
        )
        self._pause(key, DECISION_FAILED, problem, pause=pause)

    async def _run_stages(self) -> None:
        verified = self._verified()
        await self._run_decision_stages(verified)
        for region in self.graph.regions:
            key = f"region:{region.key}"
            if key in self.state.stages or not self.graph.region_complete(region, verified):
                continue
            checks = self.project.region_checks(region.index)
            failed = await self._run_checks(key, "L2", checks)
            self.state.stages[key] = "failed" if failed else "passed"
            self.save()
            self.emit(StageFinished(node=key, stage="L2", passed=not failed, checks=len(checks), failed=failed))
            await self._commit_map(f"foreman: L2 {'failed' if failed else 'passed'} for region {region.label}")
            if failed:
                suspect, findings = await self._diagnose(key, list(region.process_nodes))
                self._pause_stage(
                    key, L2_FAILED, f'region "{region.label}": {", ".join(failed)} failed', suspect, findings
                )
        process = self.graph.process_order
        decisions_done = not self._held_by_decisions()
        if process and len(verified) == len(process) and decisions_done and "end" not in self.state.stages:
            checks = self.project.end_checks()
            failed = await self._run_checks("end", "L3", checks)
            bench_ok = await self._benchmark()
            self.state.stages["end"] = "failed" if failed or not bench_ok else "passed"
            self.save()
            self.emit(
                StageFinished(
                    node="end",
                    stage="L3",
                    passed=not failed and bench_ok,
                    checks=len(checks),
                    failed=failed + ([] if bench_ok else ["benchmark"]),
                )
            )
            await self._commit_map(f"foreman: L3 {'failed' if failed or not bench_ok else 'passed'}")
            if failed or not bench_ok:
                suspect, findings = await self._diagnose("end", self._chain_by_region())
                self._pause_stage(
                    "end",
                    L3_FAILED,
                    ", ".join(failed + ([] if bench_ok else ["benchmark"])) + " failed",
                    suspect,
                    findings,
                )

    def _pause_stage(self, key: str, trigger: str, problem: str, suspect: str | None, findings: list[str]) -> None:
        named = f"; first suspicious node: {suspect}" if suspect else "; every checkpoint and condition holds"
        self._pause(
            key,
            trigger,
            problem + named,
            evidence="\n".join(findings),
            suspect=suspect,
            tried="walked the checkpoint chain in order: " + "; ".join(findings[-3:]),
        )

    def _chain_by_region(self) -> list[str]:
        """L3 diagnosis order: region by region (in the order their first nodes run), then the rest."""
        regions = sorted(
            (r for r in self.graph.regions if r.process_nodes), key=lambda r: self.graph.rank(r.process_nodes[0])
        )
        chain = [n for r in regions for n in r.process_nodes] + self.graph.process_order
        return list(dict.fromkeys(chain))

    async def _diagnose(self, stage: str, chain: list[str]) -> tuple[str | None, list[str]]:
        """Walk the checkpoint chain in order: each node's checkpoint (present, JSON, its own, with output)
        and its pre/post conditions that have commands, in the integrated tree. The first node whose
        checkpoint or condition does not hold is the suspect."""
        findings: list[str] = []
        suspect = None
        for node in chain:
            problem = await asyncio.to_thread(checkpoint_problem, self.project_dir, node)
            if problem:
                findings.append(f"{node}: {problem}")
                suspect = node
                break
            broken = None
            for check in self.project.node_checks(node):
                if check.phase == "core" or not check.runnable:
                    continue
                name = f"{owner_name(stage)}-{node}-{check.phase}{check.index}.log"
                log = self.home / "logs" / "diagnosis" / name
                outcome = await self._run_cmd(check.item.cmd or "", self.project_dir, log, stage)
                if outcome.status == "fail":
                    broken = f"{node}: {check.phase}[{check.index}] ({check.item.desc}) does not hold: {outcome.reason}"
                    break
            if broken:
                findings.append(broken)
                suspect = node
                break
            findings.append(f"{node}: checkpoint and conditions hold")
        self.emit(DiagnosisMade(node=stage, stage=stage, suspect=suspect, findings=findings))
        return suspect, findings

    async def _benchmark(self) -> bool:
        bench = self.project.doc.model.meta.benchmark
        if bench is None or not bench.cmd:
            return True
        log = self.home / "logs" / "end" / "benchmark.log"
        outcome = await self._run_cmd(bench.cmd, self.project_dir, log, "end")
        value = _last_number(outcome.output_tail)
        passed = outcome.status == "pass"
        if passed and bench.known_optimal is not None:
            passed = value is not None and abs(value - bench.known_optimal) <= 1e-6 * max(1.0, abs(bench.known_optimal))
        self.emit(
            BenchmarkRan(
                node="end",
                cmd=bench.cmd,
                passed=passed,
                value=value,
                known_optimal=bench.known_optimal,
                output_tail=outcome.output_tail[-2000:],
            )
        )
        return passed


def _last_number(text: str) -> float | None:
    """The benchmark's value: the last line of its output, when that line is a number."""
    for line in reversed(text.strip().splitlines()):
        try:
            return float(line.strip())
        except ValueError:
            return None
    return None
