"""The review step: the locked template filled with the node's how and code (scope violations noted), the
reviewer agent run, its CLEAN/FLAG verdict acted on within bounded rounds."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from .calls import Calls
from .context import FailedStart
from .events import (
    AttemptFailed,
    ReviewFinished,
    ScopeViolated,
)
from .lifecycle import Phase
from .pauses import REVIEW_FAILED, SPEC_DEPARTURE
from .prompts import (
    code_files_text,
    parse_verdict,
    review_prompt,
)
from .workspace import finish

TEST_PATH = re.compile(r"(^|/)(tests?/|test_[^/]*$|[^/]*_test\.[a-z]+$)")
"""Test files a node may always touch besides its owned files."""


class Reviews(Calls):
    def _scope(self, node: str) -> tuple[list[str], list[str]]:
        """(owned files that exist, files the node changed outside its scope), project-relative."""
        nr = self.state.node(node)
        owned = list(self._node_files(node))
        outside: list[str] = []
        if nr.base and nr.head and nr.base != nr.head:
            rel = self._rel_project().as_posix()
            prefix = "" if rel == "." else rel + "/"
            if self.state.isolation == "worktree":
                changed = self.repo.changed_files(nr.base, nr.head)
            else:
                changed = self.repo.changed_files_of([c.sha for c in self.repo.trailer_commits(nr.base, node)])
            allowed = set(owned) | {f"_checkpoints/{node}.json"}
            for path in changed:
                local = path[len(prefix) :] if path.startswith(prefix) else path
                if local not in allowed and not TEST_PATH.search(local):
                    outside.append(local)
        return owned, outside

    async def _run_reviewer(self, node: str, round_: int, prompt: Path, log: Path) -> tuple[Any, Any]:
        """The reviewer in a throwaway checkout of the node's commit (it only reads, and even so it cannot
        change the node's tree), removed when it is done."""
        head = self.state.node(node).head
        if head is None:  # nothing committed to look at: the node's tree, read-only flags still apply
            return await self._call(node, self.reviewer, "reviewer", round_, prompt, None, log)
        root = await finish(self.ws.add_review_tree, node, head)
        try:
            workdir = root / self._rel_project()
            return await self._call(node, self.reviewer, "reviewer", round_, prompt, None, log, workdir)
        finally:
            await finish(self.ws.remove_review_tree, node)

    async def _review(self, node: str) -> None:
        """Run the reviewer: CLEAN → merging; FLAG → a fix task (running); no verdict, too many rounds, a FLAG
        on item 1, a reviewer that cannot start → paused."""
        nr = self.state.node(node)
        for _ in range(2):  # one retry when the reviewer gives no verdict
            if not await self._budget_allows(node, "reviewer"):
                return
            nr.review_round += 1
            round_ = nr.review_round
            if round_ > self.settings.review_rounds + 1:
                self._pause(node, REVIEW_FAILED, f"{round_ - 1} reviews without CLEAN")
                return
            owned, outside = await asyncio.to_thread(self._scope, node)
            if outside:
                self.emit(ScopeViolated(node=node, files=outside))
            content = self.project.doc.content(node)
            code = await asyncio.to_thread(code_files_text, self.tree_of(node), owned, outside)
            prompt = self._write(
                self._message_path(node, f"review-{round_}.md"),
                review_prompt(node, content.how_text if content else "", code),
            )
            log = self.home / "logs" / node / f"review-{round_}.log"
            result, report = await self._run_reviewer(node, round_, prompt, log)
            if isinstance(result, FailedStart):  # like a worker that could not start: said, never "no verdict"
                reason = f"the reviewer could not start: {result.message}"
                self.emit(AttemptFailed(node=node, attempt=round_, reason=reason, role="reviewer"))
                self._pause(node, REVIEW_FAILED, reason)
                return
            verdict, text = parse_verdict(report.text())
            self.save()
            self.emit(ReviewFinished(node=node, round=round_, verdict=verdict, text=text))
            if verdict == "CLEAN":
                self.lifecycle.move(node, Phase.MERGING)
                return
            if verdict == "FLAG":
                if re.match(r"FLAG\W*\[?\s*1\s*\]", text):  # checklist item 1: structure does not match how
                    self._pause(
                        node,
                        SPEC_DEPARTURE,
                        f"the reviewer says the implementation departs from the how: {text}",
                        evidence=report.text()[-4000:],
                    )
                    return
                if round_ >= self.settings.review_rounds:
                    self._pause(node, REVIEW_FAILED, f"still flagged after {round_} reviews: {text}")
                    return
                self._send_fix(node, "The reviewer flagged the code.", text)
                return
        self._pause(
            node, REVIEW_FAILED, "the reviewer gave no CLEAN/FLAG verdict twice", "\n".join(list(report.lines)[-40:])
        )
