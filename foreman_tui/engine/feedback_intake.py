"""Taking in a feedback file during a run: each note goes where ``feedback.route_notes`` says.

- a process node: with its next attempt (a fix task when it is in review or about to merge); a verified node
  opens a "feedback on a verified node" pause;
- a decision node: the process nodes feeding it (its logic lives in their code);
- a region: its process nodes not yet verified, or, once the whole region is verified, a pause on the region
  whose options name each of its nodes;
- the flow chart (``## Flow``, edges, terminal nodes): the event log and the report;
- nowhere (an unknown label): reported as an event and in ``foreman status --json``, and the file is kept.

A note is taken once (by a digest kept in the run state): the renderer rewrites the whole file with every
annotation on each submission, so notes already routed come again and are skipped. The file is renamed
``.done`` only when every note in it was routed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path

from ..map.files import read_inside
from .context import RunContext
from .events import FeedbackRouted
from .feedback import FeedbackNote, Route, parse_feedback_file, route_notes
from .pauses import FEEDBACK_ON_VERIFIED, Option, Pause
from .project import feedback_names
from .runstate import FeedbackMiss


def _digest(name: str, note: FeedbackNote) -> str:
    key = [name, note.section, note.tab, note.anchor, note.text, note.node, note.edge, note.region]
    return hashlib.sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]


class FeedbackIntake(RunContext):
    def _feedback_files(self) -> list[Path]:
        folder = self.map_path.parent
        return [folder / name for name in feedback_names(self.map_path) if (folder / name).is_file()]

    async def _take_feedback(self) -> None:
        folder = self.map_path.parent
        for path in self._feedback_files():
            try:
                mtime = path.stat().st_mtime_ns
                if self._feedback_read.get(path) == mtime:
                    continue  # kept for its unrouted notes and unchanged since
                # A link leading out of the project (LeavesRoot, an OSError) is never read: its target's text
                # would go into workers' tasks. Validation refuses one that is there when the run starts.
                text = await asyncio.to_thread(read_inside, path, folder, "replace")
            except OSError:
                continue
            self._route_file(path, text)
            if any(miss.file == path.name for miss in self.state.feedback_unmatched):
                self._feedback_read[path] = mtime
            else:
                self._feedback_read.pop(path, None)
                done = path.with_name(path.name + ".done")
                if done.exists():
                    done = path.with_name(f"{path.name}.{int(time.time())}.done")
                path.rename(done)
            self.save()

    def _route_file(self, path: Path, text: str) -> None:
        graph = self.graph
        titles = {n: c.title for n, c in self.project.doc.model.contents.items()}
        regions = [(r.key, r.label, r.process_nodes) for r in graph.regions]
        routes = route_notes(
            parse_feedback_file(text).notes, labels=graph.labels, titles=titles, types=graph.types, regions=regions
        )
        misses = []
        seen = set(self.state.feedback_seen)
        for route in routes:
            note = route.note
            digest = _digest(path.name, note)
            if route.kind == "unmatched":
                misses.append(
                    FeedbackMiss(
                        file=path.name, line=note.line, section=note.section, note=note.text, reason=route.reason
                    )
                )
                if digest not in seen:
                    self._routed(None, path, note, f"not routed: {route.reason}")
            elif digest not in seen:
                self._deliver(route, path)
            seen.add(digest)
        self.state.feedback_seen = sorted(seen)
        self.state.feedback_unmatched = [m for m in self.state.feedback_unmatched if m.file != path.name] + misses

    def _routed(self, node: str | None, path: Path, note: FeedbackNote, routed_as: str) -> None:
        self.emit(
            FeedbackRouted(
                node=node,
                file=path.name,
                note=note.for_worker(),
                routed_as=routed_as,
                section=note.section,
                line=note.line,
            )
        )

    def _deliver(self, route: Route, path: Path) -> None:
        note = route.note
        kind = self.graph.types.get(route.targets[0], "") if route.targets else ""
        if route.kind == "node" and kind == "process":
            node = route.targets[0]
            self._routed(node, path, note, self._feedback_to_node(node, note.for_worker()))
        elif route.kind == "node" and kind == "decision":
            feeders = self.graph.decision_feeders.get(route.targets[0], ())
            for node in feeders:
                self._routed(node, path, note, self._feedback_to_node(node, note.for_worker()))
            if not feeders:
                self._routed(route.targets[0], path, note, "recorded (a decision fed by no process node)")
        elif route.kind == "region" and route.region is not None:
            self._feedback_to_region(route.region, route.targets, path, note)
        else:  # the flow chart, a terminal or auxiliary node: for the person reading the report
            self._routed(route.targets[0] if route.targets else None, path, note, "recorded for the report (flow)")

    def _feedback_to_node(self, node: str, text: str) -> str:
        nr = self.state.node(node)
        if nr.phase == "paused" and nr.pause is not None and nr.pause.trigger == FEEDBACK_ON_VERIFIED:
            nr.pause.problem += f"\n- {text}"  # one pause gathers the notes on a verified node
            return "added to its open pause"
        if nr.phase == "verified":
            self._pause(node, FEEDBACK_ON_VERIFIED, f"feedback on a verified node:\n- {text}", evidence=text)
            return "pause"
        nr.feedback.append(text)
        return "with its next task"

    def _verified_work(self, node: str) -> bool:
        """Verified, or paused only for feedback on its verified work."""
        nr = self.state.node(node)
        held = nr.phase == "paused" and nr.pause is not None and nr.pause.trigger == FEEDBACK_ON_VERIFIED
        return nr.phase == "verified" or held

    def _feedback_to_region(self, key: str, members: tuple[str, ...], path: Path, note: FeedbackNote) -> None:
        region = f"region:{key}"
        open_ = self.state.nodes.get(region)
        if open_ is not None and open_.pause is not None and open_.pause.trigger == FEEDBACK_ON_VERIFIED:
            open_.pause.problem += f"\n- {note.for_worker()}"
            self._routed(region, path, note, "added to the region's open pause")
            return
        waiting = [n for n in members if not self._verified_work(n)]
        if waiting:
            for node in waiting:
                self._routed(node, path, note, self._feedback_to_node(node, note.for_worker()))
            return
        options = [
            Option(key=chr(ord("A") + i), label=f"redo {n} with this note", action="reset", target=n)
            for i, n in enumerate(members)
        ]
        options.append(Option(key=chr(ord("A") + len(members)), label="keep the region as it is", action="accept"))
        label = next((r.label for r in self.graph.regions if r.key == key), key)
        pause = Pause(
            node=region,
            trigger=FEEDBACK_ON_VERIFIED,
            problem=f'feedback on the verified region "{label}":\n- {note.for_worker()}',
            evidence=note.for_worker(),
            options=options,
        )
        self._pause(region, FEEDBACK_ON_VERIFIED, pause.problem, pause=pause)
        self._routed(region, path, note, "pause")
