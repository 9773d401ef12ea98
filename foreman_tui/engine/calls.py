"""Agent calls: starting a worker or a reviewer process, watching it, and the limits around it.

``_call`` is what the steps use. Before a call: the budget (``limits.Spend``) — a run or node that has spent its
budget, or would pass it with this call, opens a "budget reached" pause instead. During it: the attempt
timeout, a grace after the CLI's final result, the stall timeout (``watchdog.py``). After it: a rate limit or an
overload is waited out (``limits.Backoff``) with fewer workers at once (``limits.Throttle``) and the call made
again — resumed when the agent can, so nothing is lost — and never counts as a failed attempt. The cost of a
CLI that reports tokens but not dollars comes from ``[prices]``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any

from ..agents.presets import Agent, AgentContext, AgentReport, RateLimit, Tokens
from .context import FailedStart, RunContext
from .events import (
    AgentReported,
    AgentStep,
    AgentStopped,
    BudgetRaised,
    RateLimited,
    WorkerExited,
    WorkerStarted,
)
from .executor import AttemptSpec, ExecutorError
from .lifecycle import Phase
from .limits import Spend
from .pauses import BUDGET_REACHED, Decision, Option, Pause
from .process import ProcessResult
from .sandbox import agent_writable, sandbox_prefix
from .watchdog import LINGERED, Activity, Limits, watch
from .workspace import finish_async

BUDGET = "budget"
"""The pseudo-node the run's "budget reached" pause is on."""


class Calls(RunContext):
    # ------------------------------------------------------------------------------------------ budget

    def _spend(self, node: str) -> Spend:
        nr = self.state.node(node)
        s = self.settings
        return Spend(
            run=self.state.spent(),
            node=nr.cost_usd,
            largest_call=self.state.largest_call_usd,
            in_flight=len(self.children),
            known=self._calls_finished > 0 or self.state.largest_call_usd > 0,
            run_budget=s.budget_usd + self.state.budget_raised if s.budget_usd is not None else None,
            node_budget=s.node_budget_usd + nr.budget_raised if s.node_budget_usd is not None else None,
        )

    def _budget_paused(self) -> bool:
        nr = self.state.nodes.get(BUDGET)
        return nr is not None and nr.phase == Phase.PAUSED

    async def _budget_allows(self, node: str, role: str) -> bool:
        """Whether a ``role`` call for ``node`` may start (after waiting for the first call of a budgeted run to
        finish); if not, the budget pause is open (the run's, or the node's own) and the caller returns without
        changing the node's phase."""
        while not self._budget_paused():
            spend = self._spend(node)
            over = spend.over()
            if over != "wait":
                break
            self._call_finished.clear()
            await self._call_finished.wait()
        else:
            return False
        if over is None:
            return True
        if over == "run":
            assert spend.run_budget is not None and self.settings.budget_usd is not None
            problem = _problem("the run", spend.run, spend.run_budget, spend)
            self._pause(BUDGET, BUDGET_REACHED, problem, pause=_budget_pause(BUDGET, problem, self.settings.budget_usd))
        else:
            assert spend.node_budget is not None and self.settings.node_budget_usd is not None
            problem = _problem(f"node {node}", spend.node, spend.node_budget, spend)
            pause = _budget_pause(node, problem, self.settings.node_budget_usd)
            phase = self.lifecycle.phase(node)
            pause.resume = str(phase if phase != Phase.RUNNING else Phase.PENDING)
            self._pause(node, BUDGET_REACHED, problem, pause=pause)
        return False

    async def _decide_budget(self, decision: Decision, option: Option | None) -> None:
        """Raise the run's or a node's budget by the option's amount (or by the number the person typed), or stop."""
        node = decision.node
        if option is not None and option.action == "stop":
            self.request_stop()
            return
        amount = option.amount if option is not None and option.amount else budget_amount(decision.text)
        if amount is None:
            return  # apply_decision let it through: it has an option or a number
        nr = self.state.node(node)
        pause = nr.pause
        if node == BUDGET:
            self.state.budget_raised += amount
            del self.state.nodes[BUDGET]
            budget = (self.settings.budget_usd or 0.0) + self.state.budget_raised
        else:
            nr.budget_raised += amount
            resume = Phase(pause.resume) if pause is not None and pause.resume else Phase.PENDING
            self.lifecycle.move(node, resume, pause=None)
            budget = (self.settings.node_budget_usd or 0.0) + nr.budget_raised
        self.save()
        self.emit(BudgetRaised(node=node, by=amount, budget=budget, who=decision.who))

    # ------------------------------------------------------------------------------------------- calls

    async def _call(
        self,
        node: str,
        agent: Agent,
        role: str,
        attempt: int,
        prompt: Path,
        message: Path | None,
        log: Path,
        workdir: Path | None = None,
    ) -> tuple[Any, AgentReport]:
        """One agent call under the run's limits; a rate limit is waited out and the call made again (a worker
        resumed in its conversation when its agent can), so what comes back is the first call that was not
        refused for one — or that committed anyway."""
        nr = self.state.node(node)
        head_before = nr.head
        instruction = message or prompt  # what the worker was asked: repeated to it after each rate limit
        while True:
            slot = self.throttle if role == "worker" else contextlib.nullcontext()
            async with slot:
                result, report = await self._run_agent(node, agent, role, attempt, prompt, message, log, workdir)
            if role == "worker" and self._monitor is not None:
                await self._monitor.scan("exit")
            limited = report.rate_limit
            if (
                limited is None
                and isinstance(result, ProcessResult)
                and result.exit_code in agent.settings.rate_limit_exit
            ):
                limited = _exit_limit(result.exit_code)
            if limited is None or (role == "worker" and nr.head != head_before):
                self.backoff.clear(node)
                self.throttle.succeeded()
                return result, report
            wait = self.backoff.next(node, limited.retry_after)
            parallel = self.throttle.limited()
            retry_at = time.time() + wait
            if report.session_id and role == "worker":
                self.lifecycle.note(node, session_id=report.session_id)
            self.lifecycle.note(node, rate_limited=limited.text, retry_at=retry_at)
            self.emit(
                RateLimited(
                    node=node,
                    role=role,
                    attempt=attempt,
                    wait=round(wait, 1),
                    retry_at=retry_at,
                    reason=limited.text,
                    parallel=parallel,
                )
            )
            try:
                await asyncio.sleep(wait)
            finally:
                self.lifecycle.note(node, rate_limited="", retry_at=None)
            if role == "worker" and agent.resumable and self.state.node(node).session_id:
                message = self._continue_message(node, attempt, instruction, limited.text)

    async def _run_agent(
        self,
        node: str,
        agent: Agent,
        role: str,
        attempt: int,
        prompt: Path,
        message: Path | None,
        log: Path,
        workdir: Path | None = None,
    ) -> tuple[Any, AgentReport]:
        """Start one agent process in ``workdir`` (default: the node's tree), wait for it (stopping it at the
        timeout, after its result's grace, or when it stalls: ``watchdog.py``), and return (result, report)."""
        nr = self.state.node(node)
        tree = workdir or self.tree_of(node)
        ctx = AgentContext(
            node,
            role,
            attempt,
            self.map_path,
            tree,
            prompt,
            message,
            nr.session_id if role == "worker" else None,
            self._node_files(node),
            self._spend(node).left(),
        )
        invocation = agent.command(ctx)
        argv = invocation.argv
        if agent.settings.sandbox == "bwrap":
            argv = [*sandbox_prefix(agent_writable(tree, self.repo.common_dir), network=True), *argv]
        env = (
            self._env()
            | self.repo.identity_env
            | self.executor.env()
            | {
                "FOREMAN_NODE_ID": node,
                "FOREMAN_MAP": str(self.map_path),
                "FOREMAN_WORKDIR": str(tree),
                "FOREMAN_PROMPT_FILE": str(prompt),
                "FOREMAN_ATTEMPT": str(attempt),
                "FOREMAN_ROLE": role,
            }
        )
        if message is not None:
            env["FOREMAN_MESSAGE_FILE"] = str(message)
        parser = agent.parser()
        activity = self.activity[node] = Activity()

        def on_lines(stream: str, lines: list[str]) -> None:
            activity.touch()
            seen = len(parser.report.steps)
            parser.feed_lines(stream, lines)
            for step in parser.report.steps[seen:]:
                self.emit(AgentStep(node=node, role=role, attempt=attempt, step=step))
            if self.on_output is not None:
                self.on_output(node, stream, lines)

        mark = self._mark(node, role)
        shipped = [p for p in (prompt, message, invocation.stdin, self.map_path) if p is not None]
        spec = AttemptSpec(node, role, attempt, argv, tree, env, log, invocation.stdin, on_lines, mark, shipped)
        child = self.executor.attempt(spec)
        key = f"{node}.{role}"
        try:
            pid = await child.start()
        except (OSError, ExecutorError) as exc:
            return FailedStart(str(exc)), parser.report
        self.children[key] = child
        where = child.record()
        self.pids.record(node, role, pid, argv, mark, where)
        self.emit(
            WorkerStarted(
                node=node,
                role=role,
                attempt=attempt,
                pid=pid,
                argv=argv,
                workdir=str(tree),
                log=str(log),
                resume=invocation.resumed,
                executor=self.executor.kind,
                host=str(where.get("host", "")),
            )
        )
        s = self.settings
        limits = Limits(s.timeout, s.result_grace, s.stall_timeout, s.stop_grace)
        try:
            result, stopped_for = await watch(child, limits, lambda: parser.report.done, activity, tree)
        except asyncio.CancelledError:
            if key not in self._handed_off:  # left running on purpose by a person quitting
                await finish_async(child.stop(self.settings.stop_grace))
                stopped = WorkerExited(
                    node=node,
                    role=role,
                    attempt=attempt,
                    exit_code=child.returncode,
                    duration=child.elapsed,
                    stopped=True,
                )
                self.emit(stopped)
            raise
        finally:
            self.children.pop(key, None)
            if key not in self._handed_off:
                self.pids.clear(node, role)
        if stopped_for is not None:
            after = s.result_grace if stopped_for == LINGERED else s.stall_timeout
            self.emit(AgentStopped(node=node, role=role, attempt=attempt, reason=stopped_for, after=after))
            result = dataclasses.replace(result, stopped_for=stopped_for)
        self._calls_finished += 1
        self._call_finished.set()
        self._agent_reported(node, agent, role, attempt, parser.report)
        self.emit(
            WorkerExited(
                node=node,
                role=role,
                attempt=attempt,
                exit_code=result.exit_code,
                duration=result.duration,
                timed_out=result.timed_out,
                stopped=result.stopped,
            )
        )
        return result, parser.report

    def _continue_message(self, node: str, attempt: int, instruction_file: Path, said: str) -> Path:
        """What a resumed worker is told after its turn was cut off by a rate limit: go on, with the instruction
        it was working on repeated (the conversation may not have kept it)."""
        instruction = instruction_file.read_text(encoding="utf-8")
        text = (
            "# Continue\n\nYour last turn was cut off by the model API (rate limit or overload: "
            f"{said[:300]}). Continue where you left off: check `git status` and `git log` for what is already "
            f"done, and finish the task.\n\n## The instruction you were working on\n\n{instruction}"
        )
        return self._write(self._message_path(node, f"continue-{attempt}.md"), text)

    def _agent_reported(self, node: str, agent: Agent, role: str, attempt: int, report: AgentReport) -> None:
        cost, source = report.cost_usd, "reported" if report.cost_usd is not None else ""
        tokens = report.tokens
        if report.thread_tokens and report.session_id:  # totals of the conversation: this call's are the rest
            seen = self.state.node(node).thread_tokens
            before = seen.get(report.session_id, [0, 0, 0])
            seen[report.session_id] = [tokens.input, tokens.cached_input, tokens.output]
            now = (tokens.input, tokens.cached_input, tokens.output)
            tokens = Tokens(*(max(0, total - earlier) for total, earlier in zip(now, before, strict=False)))
        if cost is None and tokens:
            prices = self.settings.prices
            price = prices.get(agent.settings.model or "") or prices.get(report.model or "") or prices.get("default")
            if price is not None:
                cost, source = price.cost(tokens.input, tokens.cached_input, tokens.output), "prices"
        if not (report.session_id or cost or report.steps or report.errors or tokens):
            return  # a plain-text agent: nothing structured to report
        if cost:
            self.state.node(node).cost_usd += float(cost)
            self.state.largest_call_usd = max(self.state.largest_call_usd, float(cost))
        self.emit(
            AgentReported(
                node=node,
                role=role,
                attempt=attempt,
                session_id=report.session_id,
                cost_usd=cost,
                turns=report.turns,
                steps=list(report.steps),
                files=list(report.files),
                errors=list(report.errors),
                tokens=dataclasses.asdict(tokens) if tokens else {},
                cost_source=source,
            )
        )


def _budget_pause(node: str, problem: str, step: float) -> Pause:
    """A "budget reached" pause: raise by the configured budget again (or by the amount the person types), or stop."""
    options = [
        Option(key="A", label=f"raise the budget by ${step:g}", action="raise_budget", amount=step),
        Option(key="B", label="stop the run (it resumes here next time)", action="stop"),
    ]
    return Pause(node=node, trigger=BUDGET_REACHED, problem=problem, options=options)


def _problem(who: str, spent: float, budget: float, spend: Spend) -> str:
    if spent >= budget:
        return f"{who} has spent ${spent:.2f} of its ${budget:.2f} budget"
    return (
        f"{who} has spent ${spent:.2f} of its ${budget:.2f} budget; the next call (up to ${spend.largest_call:.2f}, "
        f"with {spend.in_flight} under way) would pass it"
    )


def budget_amount(text: str) -> float | None:
    """The dollars a person typed at a budget pause ("5", "$2.50"), or None."""
    try:
        value = float(text.strip().lstrip("$").replace(",", ""))
    except ValueError:
        return None
    return value if value > 0 else None


def _exit_limit(code: int | None) -> RateLimit:
    return RateLimit(f"exited with status {code} (rate_limit_exit in foreman.toml)")
