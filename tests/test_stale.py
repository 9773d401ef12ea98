"""Plans that change during a build (SPEC §11): stale nodes, re-verification without waste, reset. Real
repositories, the scripted agent, the real `foreman` in subprocesses."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from foreman_tui.engine.lifecycle import Phase
from foreman_tui.engine.reset import stale_fields
from foreman_tui.engine.runstate import NodeRun
from foreman_tui.map.store import atomic_write

from .conftest import DEMO_DIR
from .engine_support import (
    DEMO_PROCESS,
    demo_repo,
    events,
    foreman,
    git,
    kinds,
    map_state,
    start_foreman,
    trust_map,
    wait_for,
)

SCRIPT = json.loads((DEMO_DIR / "script.json").read_text())["nodes"]


def _edit(map_path: Path, change: Any, message: str = "edit the map") -> None:
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    change(doc)
    atomic_write(map_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
    subprocess.run(["git", "commit", "-qam", message], cwd=map_path.parent, check=True)
    trust_map(map_path)


def _status(map_path: Path) -> dict[str, dict[str, Any]]:
    shown = foreman("status", str(map_path), "--json")
    assert shown.returncode == 0, shown.stderr
    return {n["id"]: n for n in json.loads(shown.stdout)["nodes"] if n["type"] == "process"}


def _complete(tmp_path: Path, **kwargs: Any) -> Path:
    map_path = demo_repo(tmp_path, **kwargs)
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr
    return map_path


def test_a_changed_post_condition_makes_its_node_and_everything_downstream_stale(tmp_path: Path) -> None:
    map_path = _complete(tmp_path)
    before = len(events(map_path))
    downstream = DEMO_PROCESS[DEMO_PROCESS.index("03_seed_centroids") :]

    def tighten(doc: dict[str, Any]) -> None:
        doc["contents"]["03_seed_centroids"]["verify"]["post"].append({"desc": "the seeds are distinct points"})

    _edit(map_path, tighten)
    status = _status(map_path)
    assert {n for n, s in status.items() if s["stale"]} == set(downstream), status
    assert status["03_seed_centroids"]["stale"] == "03_seed_centroids's post changed"
    assert status["04_assign"]["stale"] == "03_seed_centroids's post changed"
    assert not status["01_load_points"]["stale"] and not status["02_vector_math"]["stale"]
    text = foreman("status", str(map_path)).stdout
    assert "Build complete" not in text and f"{len(downstream)} node(s) are stale" in text

    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    evs = events(map_path)[before:]
    assert [e["node"] for e in kinds(evs, "NodeStale")] == downstream
    assert not kinds(evs, "WorkerStarted") or all(
        e["detail"]["role"] == "reviewer" for e in kinds(evs, "WorkerStarted")
    )
    reviewed = {e["node"] for e in kinds(evs, "ReviewFinished")}
    checked = {e["node"] for e in kinds(evs, "CheckFinished") if e["detail"]["level"] == "L1"}
    assert set(downstream) <= reviewed and {"03_seed_centroids", "04_assign", "05_update"} <= checked
    assert {e["node"] for e in kinds(evs, "StageFinished")} >= {"region:lloyd", "end"}
    assert all(s["status"] == "verified" for s in map_state(map_path).values() if s)
    assert not any(s["stale"] for s in _status(map_path).values())
    # The map said "implemented" for them in between, in a commit of its own.
    stale_commit = git(map_path, "log", "--format=%H", "--grep", "foreman: stale").split()[0]
    shown = json.loads(git(map_path, "show", f"{stale_commit}:algorithm-map.json"))
    assert shown["state"]["nodes"]["04_assign"]["status"] == "implemented"
    report = foreman("report", str(map_path)).stdout  # each re-verification, and why
    assert "stale: 03_seed_centroids's post changed" in report.split("## Node `05_update`")[1]


def test_editing_an_overview_changes_nothing_and_a_check_command_only_its_node(tmp_path: Path) -> None:
    map_path = _complete(tmp_path)

    def prose(doc: dict[str, Any]) -> None:
        doc["contents"]["02_vector_math"]["overview"] += " (reworded)"

    _edit(map_path, prose)
    assert not any(s["stale"] for s in _status(map_path).values())

    def check(doc: dict[str, Any]) -> None:
        doc["contents"]["07_inertia"]["verify"]["core"][0]["cmd"] += " -v"

    _edit(map_path, check)
    status = _status(map_path)
    assert {n for n, s in status.items() if s["stale"]} == {"07_inertia"}
    before = len(events(map_path))
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    evs = events(map_path)[before:]
    assert [e["node"] for e in kinds(evs, "NodeStale")] == ["07_inertia"]
    assert not [e for e in kinds(evs, "WorkerStarted") if e["detail"]["role"] == "worker"]


def test_a_stale_node_whose_check_now_fails_gets_a_fix_task_naming_the_change(tmp_path: Path) -> None:
    flag = tmp_path / "fixed"
    fix = {**SCRIPT["05_update"], "files": {**SCRIPT["05_update"]["files"], "notes.txt": "fixed"}}
    map_path = _complete(tmp_path, nodes={"05_update": {"attempts": [SCRIPT["05_update"], fix]}})

    def stricter(doc: dict[str, Any]) -> None:
        doc["contents"]["05_update"]["verify"]["core"].append(
            {"desc": "the notes say fixed", "level": "L1", "cmd": f"test -f notes.txt -o -f {flag}"}
        )

    _edit(map_path, stricter)
    before = len(events(map_path))
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    evs = events(map_path)[before:]
    fixes = kinds(evs, "FixTaskSent", "05_update")
    assert fixes, [e["kind"] for e in evs]
    message = Path(fixes[0]["detail"]["message_file"]).read_text()
    assert "05_update's implementation, checks or files changed" in message
    workers = [e["node"] for e in kinds(evs, "WorkerStarted") if e["detail"]["role"] == "worker"]
    assert workers == ["05_update"]
    assert map_state(map_path)["05_update"]["status"] == "verified"


POST_PAUSE = (
    "HARD PAUSE: [#3 upstream post condition must change]\n"
    "Node: 05_update\n"
    "Problem: 04_assign must also promise that no cluster is left empty\n"
    "Tried: read 04_assign's checkpoint; an empty cluster would divide by zero here\n"
    "Options: A) go on as it is / B) your instruction"
)


def test_hard_pause_3_answered_with_a_post_change_edits_the_map_and_reverifies_downstream(tmp_path: Path) -> None:
    asks = {"say": ["04_assign's post is too weak for me"], "pause": POST_PAUSE}
    map_path = demo_repo(tmp_path, {"05_update": {"attempts": [asks, SCRIPT["05_update"]]}})
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 3, first.stdout[-3000:] + first.stderr
    run = json.loads((map_path.parent / ".foreman" / "run.json").read_text())
    options = run["nodes"]["05_update"]["pause"]["options"]
    change = next(o for o in options if o["action"] == "change_post")
    assert change["target"] == "04_assign" and "04_assign's post condition" in change["label"]
    text = "every cluster keeps at least one point"
    assert foreman("decide", str(map_path), "05_update", change["key"], "--text", text).returncode == 0
    before = len(events(map_path))

    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr
    evs = events(map_path)[before:]
    changed = kinds(evs, "ContractChanged", "04_assign")
    assert changed and changed[0]["detail"]["text"] == text and changed[0]["detail"]["by"] == "05_update"
    doc = json.loads(map_path.read_text(encoding="utf-8"))
    assert {"desc": text} in doc["contents"]["04_assign"]["verify"]["post"]
    assert "04_assign's post condition changed" in git(map_path, "log", "--format=%s")
    assert kinds(evs, "NodeStale", "04_assign")[0]["detail"]["reason"] == "04_assign's post changed"
    workers = [e["node"] for e in kinds(evs, "WorkerStarted") if e["detail"]["role"] == "worker"]
    assert "04_assign" not in workers and "05_update" in workers  # re-checked and re-reviewed, not redone
    assert kinds(evs, "ReviewFinished", "04_assign")
    assert all(s["status"] == "verified" for s in map_state(map_path).values() if s)
    report = foreman("report", str(map_path)).stdout
    assert f"post condition added (decided at 05_update): {text}" in report


def _redoable(*nodes: str) -> dict[str, Any]:
    """Scripts in which a node sent back to its worker changes something on its second attempt (a real agent
    redoing a node does; the same files again would leave nothing to commit)."""
    return {
        n: {"attempts": [SCRIPT[n], {**SCRIPT[n], "files": {**SCRIPT[n]["files"], f"tests/redo_{n}.txt": "again"}}]}
        for n in nodes
    }


def _workers(evs: list[dict[str, Any]]) -> list[str]:
    return [e["node"] for e in kinds(evs, "WorkerStarted") if e["detail"]["role"] == "worker"]


def test_reset_sends_only_that_node_back_and_its_dependants_are_rechecked(tmp_path: Path) -> None:
    map_path = _complete(tmp_path, nodes=_redoable("05_update"))
    for bad in ("no_such_node", "06_converged", "start"):
        refused = foreman("reset", str(map_path), bad)
        assert refused.returncode == 2 and bad in refused.stderr, refused.stderr
    done = foreman("reset", str(map_path), "05_update")
    assert done.returncode == 0, done.stderr
    assert "reset: 05_update" in done.stdout and "stale: 07_inertia, 08_summarize, 09_cli" in done.stdout
    status = _status(map_path)
    assert status["05_update"]["status"] == "not_started"
    assert status["09_cli"]["status"] == "implemented" and status["09_cli"]["stale"] == "05_update was reset"
    assert status["04_assign"]["status"] == "verified" and not status["04_assign"]["stale"]
    before = len(events(map_path))
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    evs = events(map_path)[before:]
    assert _workers(evs) == ["05_update"]
    reviewed = {e["node"] for e in kinds(evs, "ReviewFinished")}
    assert reviewed == {"05_update", "07_inertia", "08_summarize", "09_cli"}
    assert all(s["status"] == "verified" for s in map_state(map_path).values() if s)


def test_reset_with_cascade_sends_what_follows_back_too(tmp_path: Path) -> None:
    map_path = _complete(tmp_path, nodes=_redoable("05_update", "07_inertia", "08_summarize", "09_cli"))
    done = foreman("reset", str(map_path), "05_update", "--cascade")
    assert done.returncode == 0, done.stderr
    before = len(events(map_path))
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    assert _workers(events(map_path)[before:]) == ["05_update", "07_inertia", "08_summarize", "09_cli"]


def test_reset_during_a_run_is_done_by_the_run(tmp_path: Path) -> None:
    slow = {**SCRIPT["09_cli"], "sleep": 8}
    map_path = demo_repo(tmp_path, {**_redoable("02_vector_math"), "09_cli": slow})
    run = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted", "09_cli")), 90, "the last worker")
        sent = foreman("reset", str(map_path), "02_vector_math")
        assert sent.returncode == 0 and "sent to the live run" in sent.stdout, sent.stderr
        out, err = run.communicate(timeout=180)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out[-3000:] + err
    evs = events(map_path)
    reset_at = next(i for i, e in enumerate(evs) if e["kind"] == "NodeReset" and e["node"] == "02_vector_math")
    after = evs[reset_at:]
    assert "02_vector_math" in _workers(after)
    assert {e["node"] for e in kinds(after, "NodeStale")} >= {"03_seed_centroids", "04_assign"}
    assert all(s["status"] == "verified" for s in map_state(map_path).values() if s)


def test_a_crash_between_stale_and_the_map_is_recovered_at_start(tmp_path: Path) -> None:
    """The run moved 07_inertia to stale (run.json) and died before the map said implemented: the next start
    sets the map back and re-verifies it without its worker."""
    map_path = _complete(tmp_path)
    run_json = map_path.parent / ".foreman" / "run.json"
    state = json.loads(run_json.read_text())
    record = NodeRun.model_validate(state["nodes"]["07_inertia"])  # moved as the engine moves it, then the kill
    changes = stale_fields(record, "07_inertia's implementation, checks or files changed")
    state["nodes"]["07_inertia"] = record.model_copy(update={**changes, "phase": Phase.STALE}).model_dump(mode="json")
    run_json.write_text(json.dumps(state))
    before = len(events(map_path))
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    evs = events(map_path)[before:]
    assert not _workers(evs)
    assert {e["node"] for e in kinds(evs, "ReviewFinished")} == {"07_inertia"}
    assert "foreman: stale nodes recorded" in git(map_path, "log", "--format=%s")


def test_a_reset_cut_short_after_the_map_is_carried_out_at_start(tmp_path: Path) -> None:
    """An offline reset wrote the map (05_update not_started, its dependants implemented) and died before
    run.json: the map's word wins — 05's worker runs again, the others are checked again, the stages rerun."""
    map_path = _complete(tmp_path, nodes=_redoable("05_update"))

    def reset_in_the_map(doc: dict[str, Any]) -> None:
        doc["state"]["nodes"]["05_update"]["status"] = "not_started"
        for node in ("07_inertia", "08_summarize", "09_cli"):
            doc["state"]["nodes"][node]["status"] = "implemented"

    _edit(map_path, reset_in_the_map, "foreman: 05_update reset by someone")
    before = len(events(map_path))
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr
    evs = events(map_path)[before:]
    assert _workers(evs) == ["05_update"]
    assert {e["node"] for e in kinds(evs, "ReviewFinished")} == {"05_update", "07_inertia", "08_summarize", "09_cli"}
    assert {e["node"] for e in kinds(evs, "StageFinished")} >= {"region:lloyd", "end"}
