"""A target project as foreman sees it: the map, ``foreman.toml``, the flowchart analysis and each
process node's owned files. The one entry point the CLI, the supervisor and the TUI load through."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..config import Settings, load_settings
from ..map._gc import gc_paused
from ..map.errors import MapError, Problem
from ..map.files import LinksOut, OwnedFiles, infer_owned_files, safe_name
from ..map.load import DEFAULT_MAP_NAME, MapDocument, load_map
from ..map.model import VerifyItem
from .graph import FlowGraph, build_graph

CHECKPOINT_DIR = "_checkpoints"


def checkpoint_path(node_id: str) -> str:
    """Where a node's worker saves its checkpoint, project-relative."""
    return f"{CHECKPOINT_DIR}/{node_id}.json"


def feedback_names(map_path: Path) -> list[str]:
    """The feedback files a run takes in, beside the map: ``<stem>.feedback.md``, ``<name>.feedback.md`` and
    ``.feedback.md``."""
    return list(dict.fromkeys([f"{map_path.stem}.feedback.md", f"{map_path.name}.feedback.md", ".feedback.md"]))


def _links_out(doc: MapDocument, owned: dict[str, OwnedFiles], change_log: bool) -> list[Problem]:
    """The paths foreman reads into a prompt or writes that lead outside the project through a symbolic link (at
    their end or on their way): each node's owned files, where its checkpoint goes, the feedback files (and the
    change log when ``foreman.toml`` has foreman write one). A repository can commit such a link; a worker would
    write through it and foreman would paste its target into the reviewer's prompt."""
    if doc.path is None:
        return []
    links = LinksOut(doc.project_dir)
    problems = []
    named: set[str] = set()  # each link once: a folder on many paths' way is one problem

    def look(where: str, what: str, rel: str, fix: str) -> None:
        found = links.of(rel)
        if found is not None and found[0] not in named:
            link, target = found
            named.add(link)
            way = "" if link == rel else f" through {link}"
            problems.append(
                Problem(where, f"{what} {rel} leads outside the project{way}: a symbolic link to {target}", fix)
            )

    replace = "replace the link with the file (or folder) itself, or with a link that stays inside the project"
    for node, files in owned.items():
        for rel in files.files:
            look(f"contents.{node}", f"owned file (from {files.describe()})", rel, replace)
        look(f"contents.{node}", "the node's checkpoint", checkpoint_path(node), replace)
    for name in feedback_names(doc.path):
        look("(feedback file)", "the feedback file", name, "remove the link; foreman reads the notes in it")
    if change_log:
        look("foreman.toml change_log", "the change log", "docs/change_log.md", replace)
    return problems


def _path_like_regions(doc: MapDocument) -> list[Problem]:
    """Warnings for region ids (labels, when there is none) shaped like a path: foreman names their logs and
    decisions after a safe form of them, never the text itself."""
    warnings = []
    for i, region in enumerate(doc.model.graph.regions):
        key, field_ = (region.id, "id") if region.id is not None else (region.label, "label")
        if any(c in key for c in "/\\\0") or key.startswith("."):
            warnings.append(
                Problem(
                    f"graph.regions[{i}].{field_}",
                    f"'{key}' looks like a path; foreman names the region's logs region_{safe_name(key)}",
                    "use letters, digits, _ and - in region ids",
                )
            )
    return warnings


@dataclass(frozen=True, slots=True)
class CheckRef:
    """One verify item located in the map: a node's (``owner`` = node id) or a region's (``region:<key>``)."""

    owner: str
    phase: str
    index: int
    item: VerifyItem
    level: str

    @property
    def runnable(self) -> bool:
        return bool(self.item.cmd)

    def to_json(self) -> dict[str, object]:
        return {
            "owner": self.owner,
            "phase": self.phase,
            "index": self.index,
            "level": self.level,
            "desc": self.item.desc,
            "cmd": self.item.cmd,
            "dispute": self.item.dispute,
        }


@dataclass(slots=True)
class Project:
    doc: MapDocument
    settings: Settings
    graph: FlowGraph
    owned: dict[str, OwnedFiles]
    warnings: list[Problem] = field(default_factory=list)
    _checks: dict[str, list[CheckRef]] = field(default_factory=dict, repr=False)
    _end_checks: list[CheckRef] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, map_path: str | Path | None = None) -> Project:
        """Load and validate everything; raises ``MapError``/``ConfigError`` on bad input."""
        with gc_paused():
            doc = load_map(Path(map_path) if map_path else Path(DEFAULT_MAP_NAME))
            settings = load_settings(doc.project_dir, known_nodes={n.id for n in doc.model.graph.nodes})
            graph = build_graph(doc.model)
            overrides = settings.file_overrides()
            owned = {n: infer_owned_files(doc.content(n), overrides.get(n)) for n in graph.process_order}
            problems = _links_out(doc, owned, settings.change_log)
            if problems:
                raise MapError(doc.source, problems)
            return cls(doc, settings, graph, owned, [*doc.warnings, *graph.warnings, *_path_like_regions(doc)])

    @property
    def files(self) -> dict[str, tuple[str, ...]]:
        return {n: o.files for n, o in self.owned.items()}

    def status_of(self, node_id: str) -> str:
        state = self.doc.model.state
        entry = state.nodes.get(node_id) if state else None
        return entry.status if entry else "not_started"

    def verified(self) -> set[str]:
        return {n for n in self.graph.node_ids if self.status_of(n) == "verified"}

    def node_checks(self, node_id: str) -> list[CheckRef]:
        """A node's own checks. Items without a level count as L1 (node level)."""
        cached = self._checks.get(node_id)
        if cached is None:
            content = self.doc.content(node_id)
            verify = content.verify if content is not None else None
            items = verify.items() if verify is not None else []
            cached = [CheckRef(node_id, phase, i, item, item.level or "L1") for phase, i, item in items]
            self._checks[node_id] = cached
        return cached

    def region_own_checks(self, region_index: int) -> list[CheckRef]:
        info = self.graph.regions[region_index]
        verify = self.doc.model.graph.regions[region_index].verify
        if verify is None:
            return []
        return [CheckRef(f"region:{info.key}", phase, i, item, item.level or "L2") for phase, i, item in verify.items()]

    def region_checks(self, region_index: int) -> list[CheckRef]:
        """What runs when a region completes: the region's own ``verify`` items (all but L3; items without
        a level count as L2) and the L2 items of its members, decision nodes included (their checks test
        the neighbouring process code, which is all verified by then)."""
        info = self.graph.regions[region_index]
        if not info.process_nodes:
            return []
        own = [c for c in self.region_own_checks(region_index) if c.level != "L3"]
        members = sorted(
            (n for n in info.nodes if self.graph.types.get(n) in ("process", "decision")), key=self.graph.rank
        )
        return own + [c for n in members for c in self.node_checks(n) if c.level == "L2"]

    def decision_checks(self, decision: str) -> list[CheckRef]:
        """What runs when a decision node's feeders are all verified: its L1 items (they test the neighbouring
        process code, which is merged by then)."""
        return [c for c in self.node_checks(decision) if c.level == "L1"]

    def end_checks(self) -> list[CheckRef]:
        """The end stage: every L3 item of nodes and regions; every item of terminal and auxiliary nodes (the
        end node's checks test the whole program); and the L2 items no region will run (of regions without
        process nodes, and of nodes in no such region). Computed once (``plan`` asks twice)."""
        if self._end_checks is None:
            self._end_checks = self._find_end_checks()
        return list(self._end_checks)

    def _find_end_checks(self) -> list[CheckRef]:
        graph = self.graph
        outside = [n for n in graph.order if graph.types[n] in ("terminal", "auxiliary")]
        checks = [c for n in outside for c in self.node_checks(n) if c.level != "L3"]
        checks += [c for n in graph.order for c in self.node_checks(n) if c.level == "L3"]
        for info in graph.regions:
            own = self.region_own_checks(info.index)
            checks += [c for c in own if c.level == "L3" or not info.process_nodes]
        covered = {n for r in graph.regions if r.process_nodes for n in r.nodes}
        checks += [
            c
            for n in graph.order
            if graph.types[n] in ("process", "decision") and n not in covered
            for c in self.node_checks(n)
            if c.level == "L2"
        ]
        return checks

    def check_schedule(self) -> list[tuple[CheckRef, str]]:
        """Every check of the map with the moment it runs (a check may run at more than one), in that order:
        a node's own L1 checks, a decision's when its feeders are verified, a region's stage, the end stage."""
        graph = self.graph
        schedule = [
            (c, f"with {n} (L1, after each attempt)")
            for n in graph.process_order
            for c in self.node_checks(n)
            if c.level == "L1"
        ]
        for n in graph.order:
            if graph.types[n] == "decision":
                feeders = ", ".join(graph.decision_feeders.get(n, ())) or "no process node"
                schedule += [(c, f"when {n}'s feeders are verified ({feeders})") for c in self.decision_checks(n)]
        for info in graph.regions:
            schedule += [(c, f'when region "{info.label}" is verified (L2)') for c in self.region_checks(info.index)]
        schedule += [(c, "at the end, when every process node is verified") for c in self.end_checks()]
        return schedule
