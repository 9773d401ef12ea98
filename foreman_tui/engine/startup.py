"""A run's start: take the repository's run lock, stop what a dead run left running, undo what it left half
done (a temp file, an aborted merge, git's index lock), then bring each node to where it really is with the
recovery step of its phase (``lifecycle.RECOVERY``), and say what the run found.
"""

from __future__ import annotations

import json

from .events import NodeRecovered, OrphanStopped, RunNoted, RunStarted
from .gitrepo import BRANCH_PREFIX, RepoError
from .handover import Handover
from .lifecycle import Phase
from .reaper import stop_leftovers
from .runstate import NodeRun, RunLock, RunState
from .staleness import Staleness
from .workspace import drop_index_lock


class Startup(Handover, Staleness):
    def _prepare(self) -> None:
        self.lock = RunLock(self.repo.common_dir)  # one foreman per repository, whichever map it runs
        self.lock.acquire()
        saved = self.runs.load()
        if saved is not None:
            self._use_state(saved)
        self._find_left_running()
        for stem, pgid in self.pids.stop_orphans(keep=frozenset(self._taken_over)):
            node = stem.split(".")[0]
            self.emit(OrphanStopped(node=node, pid=pgid, reason="left running by a run that died"))
        kept = {str(record.get("mark")) for record in self._taken_over.values()}
        for pid, mark in stop_leftovers(self.marks, keep=kept).items():  # checks, escaped descendants too
            owner: str | None = mark.removeprefix(self.marks).split(":")[1] if mark.count(":") >= 4 else None
            self.emit(OrphanStopped(node=owner, pid=pid, reason=f"started by a run that died ({mark})"))
        for node in self.ws.remove_review_trees():  # its reviewer was stopped above; it reviews again
            self.emit(NodeRecovered(node=node, was="reviewing", now="clean", reason="removed a review checkout"))
        for stale in self.project_dir.glob(f".{self.map_path.name}.*.tmp"):
            stale.unlink(missing_ok=True)  # a write cut short by a kill: the map itself was never touched
        if not self._taken_over and drop_index_lock(self.repo):
            self.emit(NodeRecovered(node=None, was="locked", now="clean", reason="git's index.lock of a killed git"))
        if self.repo.abort_unfinished_merge():
            self.emit(
                NodeRecovered(
                    node=None,
                    was="merging",
                    now="clean",
                    reason="a merge interrupted by the last run's end was aborted",
                )
            )
        if self.repo.repair_index(self.map_path):
            reason = "a state commit cut short left the map's entry in git's index behind HEAD; set to HEAD's"
            self.emit(NodeRecovered(node=None, was="committing", now="clean", reason=reason))
        resumed = saved is not None
        if saved is None:
            branch = self.repo.current_branch()
            self._use_state(RunState(integration_branch=branch, isolation=self.settings.isolation))
        branch = self.repo.current_branch()
        if branch != self.state.integration_branch:
            raise RepoError(
                f"the run integrates into '{self.state.integration_branch}' but '{branch}' is checked out; "
                f"check out '{self.state.integration_branch}' (or remove .foreman/run.json to start over)"
            )
        self._recover()
        self._mark_stale_at_start()
        self._report_taken_over()
        self._note_start()
        self.save()
        self.emit(
            RunStarted(
                map=str(self.map_path),
                isolation=self.state.isolation,
                max_parallel=self.settings.max_parallel,
                integration_branch=self.state.integration_branch,
                resumed=resumed,
            )
        )

    # ---------------------------------------------------------------------------------------- recovery

    def _recover(self) -> None:
        """Each process node to where it really is: the map's word first (a person may have changed it), then
        the recovery step of its phase."""
        steps = {
            Phase.RUNNING: self._recover_running,
            Phase.MERGING: self._recover_merging,
            Phase.VERIFIED: self._recover_verified,
        }
        for node in self.graph.process_order:
            nr = self.state.node(node)
            status = self.project.status_of(node)
            if status == "verified" and nr.phase not in (Phase.VERIFIED, Phase.STALE):
                if nr.phase != Phase.MERGED:  # merged: its record step commits what the map already says
                    self.lifecycle.adopt(node, Phase.VERIFIED)
            elif nr.phase == Phase.VERIFIED and status != "verified":  # the map says otherwise (a reset)
                self.state.nodes[node] = nr = NodeRun(attempt=nr.attempt, round_start=nr.attempt)
                self._reopen_stages({node})  # its region's and the end's checks run again once it is verified
            if nr.phase == Phase.PENDING and status == "implemented" and nr.base is None:
                self.lifecycle.move(node, Phase.CHECKING)  # implemented outside foreman: check it in the main tree
                self._recovered(node, Phase.PENDING, "the map says implemented; checks and review next")
            step = steps.get(nr.phase)
            if step is not None:
                step(node)

    def _recovered(self, node: str, was: Phase, reason: str) -> None:
        self.emit(NodeRecovered(node=node, was=was.value, now=self.lifecycle.phase(node).value, reason=reason))

    def _node_tip(self, node: str) -> str | None:
        nr = self.state.node(node)
        if nr.base is None:
            return None
        if self.state.isolation == "worktree":
            return self.repo.branch_head(BRANCH_PREFIX + node)
        found = self.repo.trailer_commits(nr.base, node)
        return found[0].sha if found else None

    def _recover_running(self, node: str) -> None:
        """An attempt that was under way: a commit made after it began is kept; with none, dispatch again."""
        if node in self._taken_over:
            return  # its worker still works: it is waited for
        nr = self.state.node(node)
        tip = self._node_tip(node)
        began = nr.attempt_from or nr.base
        if tip and tip != began:
            self.lifecycle.move(node, Phase.CHECKING, head=tip, no_commit=0, pending_message=None)
            self._recovered(node, Phase.RUNNING, f"its commit {tip[:10]} is there: kept, checks next")
        else:
            self.lifecycle.move(node, Phase.PENDING)
            self._recovered(node, Phase.RUNNING, "no commit from the interrupted attempt; dispatching again")

    def _recover_merging(self, node: str) -> None:
        """A merge cut off from its record: the branch is in the integration branch already → merged. A merge cut
        off before its commit: what it had written is set back, and it is merged again."""
        if self.state.node(node).base is None:
            return
        merged = self.ws.merged(node)
        if merged is not None:
            self.lifecycle.move(node, Phase.MERGED, merged=merged)
            self._recovered(node, Phase.MERGING, "it was merged before the run ended; recording it verified")
            return
        restored = self.repo.undo_half_merge(node)
        if restored:
            self._recovered(node, Phase.MERGING, f"a merge cut short was undone ({', '.join(restored)}); merging again")

    def _recover_verified(self, node: str) -> None:
        """Verified, but its worktree or branch was left (a stop right after the merge): remove them."""
        if self.state.isolation != "worktree" or self.settings.keep_worktrees or not self.ws.tree_left(node):
            return
        self.ws.remove_tree(node)
        self._recovered(node, Phase.VERIFIED, "its worktree and branch were left behind; removed")

    # -------------------------------------------------------------------------------------- what it found

    def _note_start(self) -> None:
        """Tell the person what the run will not do with what it found: uncommitted edits, git's identity."""
        rel_map = self.map_path.relative_to(self.repo.root).as_posix()
        changed = self.repo.changed_paths()
        if rel_map in changed and self._map_edited_beyond_state():
            self.emit(
                RunNoted(
                    note=f"{rel_map} has an uncommitted edit of yours: it stays yours (foreman commits only the "
                    "map's state, over the map as committed)"
                )
            )
        others = [p for p in changed if p != rel_map]
        if others:
            shown = ", ".join(others[:10]) + (f" and {len(others) - 10} more" if len(others) > 10 else "")
            where = (
                f"the workers' worktrees start from {self.state.integration_branch}'s last commit and do not see them"
                if self.state.isolation == "worktree"
                else "the workers share this tree with them"
            )
            self.emit(RunNoted(note=f"uncommitted changes in {shown}; {where}"))
        if self.repo.identity_env:
            self.emit(
                RunNoted(
                    note="git has no user.name/user.email here: foreman's commits and the workers' are made as "
                    "foreman <foreman@localhost> (set yours with git config to use it)"
                )
            )

    def _map_edited_beyond_state(self) -> bool:
        committed = self.repo.file_at("HEAD", self.map_path)
        try:
            head = json.loads(committed or b"{}")
            now = self.store.read()
        except (ValueError, OSError):
            return True
        head.pop("state", None)
        now.pop("state", None)
        return bool(head != now)
