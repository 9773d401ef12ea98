"""Hard pauses end to end: triggers, options, decisions from another process and on a later run, the
diagnosis, map edits, feedback, and the report — real repositories, real `foreman` processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from foreman_tui.engine.ledger import parse_gates
from foreman_tui.engine.pause_blocks import parse_worker_block
from foreman_tui.engine.pauses import SAME_CHECK_3X, SPEC_DEPARTURE, STRUCTURE_CHANGED
from foreman_tui.headless import parse_answer
from foreman_tui.map.store import atomic_write

from .engine_support import demo_repo, events, foreman, kinds, map_state, start_foreman, trust_map, wait_for

DEMO = Path(__file__).parent.parent / "maps" / "demo"
SCRIPT = json.loads((DEMO / "script.json").read_text())["nodes"]
VECTOR = (DEMO / "solution" / "02_vector_math" / "kmeans" / "vector.py").read_text()

ENGLISH_BLOCK = """HARD PAUSE: [#3 upstream post condition must change]
Node: 02_vector_math
Problem: mean() must return a list, but 01's checkpoint stores tuples
Tried: converting in place; wrapping the result
Options: A) change 01's post condition to lists / B) keep tuples and convert here / C) your instruction"""

CHINESE_BLOCK = """硬暂停：[#2 实现思路与 how 本质偏离]
当前节点：01_load_points
问题描述：CSV 有分号分隔的行，how 只说逗号
已尝试的方案：按逗号解析，失败
建议选项：A) 同时支持分号 / B) 拒绝分号行并报错 / C) 用户指示"""


def broken_vector(n: int) -> dict:
    """Attempt n of a vector.py whose dist2 is wrong (each attempt differs, so each one commits)."""
    return {
        "files": {"kmeans/vector.py": VECTOR.replace("** 2 + (a[1]", "+ (a[1]") + f"\n# try {n}\n"},
        "checkpoint": SCRIPT["02_vector_math"]["checkpoint"],
    }


def test_worker_blocks_are_parsed_with_their_options_exactly() -> None:
    english = parse_worker_block(["some output", *ENGLISH_BLOCK.splitlines()], "02_vector_math")
    assert english is not None and english.trigger == "#3 upstream post condition must change"
    assert english.problem == "mean() must return a list, but 01's checkpoint stores tuples"
    assert english.tried == "converting in place; wrapping the result"
    assert [(o.key, o.label) for o in english.options] == [
        ("A", "change 01's post condition to lists"),
        ("B", "keep tuples and convert here"),
        ("C", "your instruction"),
    ]
    chinese = parse_worker_block(CHINESE_BLOCK.splitlines(), "01_load_points")
    assert chinese is not None and chinese.trigger == "#2 实现思路与 how 本质偏离"
    assert chinese.node == "01_load_points" and chinese.problem == "CSV 有分号分隔的行，how 只说逗号"
    assert [(o.key, o.label) for o in chinese.options] == [
        ("A", "同时支持分号"),
        ("B", "拒绝分号行并报错"),
        ("C", "用户指示"),
    ]
    assert parse_worker_block(["all good", "committed"], "x") is None


def test_terminal_answers() -> None:
    pause = parse_worker_block(ENGLISH_BLOCK.splitlines(), "02_vector_math")
    assert pause is not None
    assert parse_answer(pause, "") is None
    b = parse_answer(pause, "b")
    assert b is not None and (b.option, b.text) == ("B", "")
    c = parse_answer(pause, "C: keep it simple")
    assert c is not None and (c.option, c.text) == ("C", "keep it simple")
    free = parse_answer(pause, "Bring in a dict instead")
    assert free is not None and (free.option, free.text) == (None, "Bring in a dict instead")


def test_same_check_failing_three_times_pauses_and_a_decision_from_another_process_fixes_it(tmp_path: Path) -> None:
    good = SCRIPT["02_vector_math"]
    slow_points = {**SCRIPT["01_load_points"], "sleep": 8}
    map_path = demo_repo(
        tmp_path,
        {
            "02_vector_math": {"attempts": [broken_vector(1), broken_vector(2), broken_vector(3), good]},
            "01_load_points": slow_points,
        },
    )
    run = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), "NodePaused", "02_vector_math")), 60, "the #1 pause")
        pause = kinds(events(map_path), "NodePaused", "02_vector_math")[0]["detail"]
        assert pause["trigger"] == SAME_CHECK_3X
        assert [pause["evidence"].count(f"--- failure {i} ---") for i in (1, 2, 3)] == [1, 1, 1]
        assert pause["evidence"].count("FAIL: test_squared_distance") == 3
        assert [o["action"] for o in pause["options"]] == ["retry", "accept", "recheck", "reset", "fail"]
        status = json.loads(foreman("status", str(map_path), "--json").stdout)
        assert [(p["node"], p["trigger"]) for p in status["pauses"]] == [("02_vector_math", SAME_CHECK_3X)]
        decided = foreman("decide", str(map_path), "02_vector_math", "A", "--text", "use a dict")
        assert decided.returncode == 0, decided.stderr
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, out + err
    evs = events(map_path)
    decision = kinds(evs, "DecisionRecorded", "02_vector_math")[0]
    paused_at = kinds(evs, "NodePaused", "02_vector_math")[0]["ts"]
    assert decision["detail"]["text"] == "use a dict" and decision["ts"] - paused_at < 5  # picked up live
    message = (map_path.parent / ".foreman" / "runs" / "02_vector_math" / "decision-4.md").read_text()
    assert "use a dict" in message and "A) retry with your instruction as guidance" in message
    assert "use a dict" in (map_path.parent / ".foreman" / "logs" / "02_vector_math" / "4.log").read_text()
    assert kinds(evs, "NodeVerified", "01_load_points")[0]["ts"] > paused_at  # other work went on meanwhile
    assert map_state(map_path)["02_vector_math"]["status"] == "verified"
    run_state = json.loads((map_path.parent / ".foreman" / "run.json").read_text())
    assert [(d["option"], d["text"], d["who"]) for d in run_state["decisions"]] == [
        ("A", "use a dict", os.environ.get("USER") or run_state["decisions"][0]["who"])
    ]


def test_worker_blocks_pause_offline_and_the_next_run_applies_the_decision(tmp_path: Path) -> None:
    chinese = {"pause": CHINESE_BLOCK, "say": ["正在分析 CSV"]}
    english = {"pause": ENGLISH_BLOCK}
    map_path = demo_repo(
        tmp_path,
        {
            "01_load_points": {"attempts": [chinese, SCRIPT["01_load_points"]]},
            "02_vector_math": {"attempts": [english, SCRIPT["02_vector_math"]]},
        },
    )
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 3, first.stdout + first.stderr
    assert "HARD PAUSE: [#3 upstream post condition must change]" in first.stdout  # the block is printed
    assert f"Answer: foreman decide {map_path} 02_vector_math <OPTION>" in first.stdout
    status = json.loads(foreman("status", str(map_path), "--json").stdout)
    pauses = {p["node"]: p for p in status["pauses"]}
    assert [o["label"] for o in pauses["02_vector_math"]["options"]] == [
        "change 01's post condition to lists",
        "keep tuples and convert here",
        "your instruction",
    ]
    assert [o["label"] for o in pauses["01_load_points"]["options"]] == ["同时支持分号", "拒绝分号行并报错", "用户指示"]
    assert pauses["01_load_points"]["source"] == "worker"
    bad = foreman("decide", str(map_path), "02_vector_math", "E")
    assert bad.returncode == 2 and "no option E" in bad.stderr
    assert foreman("decide", str(map_path), "02_vector_math", "B").returncode == 0
    assert foreman("decide", str(map_path), "01_load_points", "--text", "两种分隔符都支持").returncode == 0
    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 0, second.stdout + second.stderr
    runs = map_path.parent / ".foreman" / "runs"
    assert "option B) keep tuples and convert here" in (runs / "02_vector_math" / "decision-2.md").read_text()
    assert "两种分隔符都支持" in (runs / "01_load_points" / "decision-2.md").read_text()
    assert all(map_state(map_path)[n]["status"] == "verified" for n in ("01_load_points", "02_vector_math"))


DECORATED_CHINESE = """好的，我需要先停下来。

```
⚠️ **硬暂停：**【3 需要修改上游节点的 post 条件】
- **当前节点**：01_load_points
- **问题描述**：CSV 中有分号分隔的行
- **已尝试的方案**：按逗号解析
- **建议选项**：A）支持分号 / B）报错 / C）用户指示
```
"""


def test_a_decorated_or_unreadable_pause_block_pauses_and_is_not_dispatched_again(tmp_path: Path) -> None:
    garbled = {"pause": "## HARD PAUSE\nI am stuck and I do not know how to say it in your format.", "exit": 1}
    map_path = demo_repo(
        tmp_path,
        {"01_load_points": {"pause": DECORATED_CHINESE}, "02_vector_math": garbled},
        settings="retries = 2\n",
    )
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    evs = events(map_path)
    for node in ("01_load_points", "02_vector_math"):  # the worker asked to stop: one attempt, no retries
        starts = [e for e in kinds(evs, "WorkerStarted", node) if e["detail"]["role"] == "worker"]
        assert len(starts) == 1 and not kinds(evs, "AttemptFailed", node), node
    decorated = kinds(evs, "NodePaused", "01_load_points")[0]["detail"]
    assert decorated["trigger"] == "#3 需要修改上游节点的 post 条件" and decorated["source"] == "worker"
    assert decorated["problem"] == "CSV 中有分号分隔的行"
    options = [(o["key"], o["label"]) for o in decorated["options"]]
    assert options == [("A", "支持分号"), ("B", "报错"), ("C", "用户指示")]
    unreadable = kinds(evs, "NodePaused", "02_vector_math")[0]["detail"]
    assert "I am stuck and I do not know how to say it" in unreadable["problem"]
    assert [o["action"] for o in unreadable["options"]] == ["retry", "reset", "fail"]  # foreman's own choices


def test_reviewer_flag_on_item_1_pauses_and_mark_failed_stops_the_dependants(tmp_path: Path) -> None:
    flag = "FLAG — [1] picks seeds at random instead of farthest-point (kmeans/seed.py:8)"
    map_path = demo_repo(tmp_path, reviews={"03_seed_centroids": [flag]})
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 3, first.stdout + first.stderr
    pause = kinds(events(map_path), "NodePaused", "03_seed_centroids")[0]["detail"]
    assert pause["trigger"] == SPEC_DEPARTURE and flag in pause["problem"]
    stored = json.loads((map_path.parent / ".foreman" / "run.json").read_text())["nodes"]["03_seed_centroids"]["pause"]
    assert "--- diff stat ---" in stored["evidence"] and "kmeans/seed.py" in stored["evidence"]
    fail_key = next(o["key"] for o in pause["options"] if o["action"] == "fail")
    assert foreman("decide", str(map_path), "03_seed_centroids", fail_key).returncode == 0
    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 3, second.stdout + second.stderr
    evs = events(map_path)
    failed = kinds(evs, "NodeFailed", "03_seed_centroids")[0]["detail"]
    assert failed["dependants"] == ["04_assign", "05_update", "07_inertia", "08_summarize", "09_cli"]
    assert kinds(evs, "RunFinished")[-1]["detail"]["outcome"] == "incomplete"
    assert not {e["node"] for e in kinds(evs, "WorkerStarted")} & set(failed["dependants"])
    report = foreman("report", str(map_path)).stdout
    assert "- Failed: 03_seed_centroids — marked failed by" in report
    assert "its dependants were stopped: 04_assign, 05_update, 07_inertia, 08_summarize, 09_cli" in report


def test_an_l2_failure_names_the_node_whose_checkpoint_breaks_the_chain(tmp_path: Path) -> None:
    bad_checkpoint = {**SCRIPT["02_vector_math"], "checkpoint": {"output": {"mean_of_three": [9.0, 9.0]}}}
    map_path = demo_repo(tmp_path, {"02_vector_math": {"attempts": [bad_checkpoint, SCRIPT["02_vector_math"]]}})
    doc = json.loads(map_path.read_text())
    check = (
        "python -c \"import json; out = json.load(open('_checkpoints/02_vector_math.json'))['output']; "
        "assert out['mean_of_three'] == [2.0, 2.0], out\""
    )
    doc["contents"]["02_vector_math"]["verify"]["post"].append(
        {"desc": "the checkpoint holds the sample's mean", "level": "L2", "cmd": check}
    )
    map_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    subprocess.run(["git", "commit", "-qam", "an L2 post condition"], cwd=map_path.parent, check=True)
    result = foreman("run", str(trust_map(map_path)), "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    evs = events(map_path)
    diagnosis = kinds(evs, "DiagnosisMade", "region:prepare")[0]["detail"]
    assert diagnosis["suspect"] == "02_vector_math"
    assert diagnosis["findings"][0] == "01_load_points: checkpoint and conditions hold"
    assert diagnosis["findings"][1].startswith("02_vector_math: post[1] (the checkpoint holds the sample's mean)")
    pause = kinds(evs, "NodePaused", "region:prepare")[0]["detail"]
    assert "first suspicious node: 02_vector_math" in pause["problem"]
    assert "Diagnosis: first suspicious node **02_vector_math**" in foreman("report", str(map_path)).stdout
    reset = next(o["key"] for o in pause["options"] if o["action"] == "reset")
    text = "write the real mean of the sample into the checkpoint"
    assert foreman("decide", str(map_path), "region:prepare", reset, "--text", text).returncode == 0
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout + again.stderr
    later = events(map_path)[len(evs) :]
    assert kinds(later, "NodeReset", "02_vector_math")
    assert text in (map_path.parent / ".foreman" / "runs" / "02_vector_math" / "decision-2.md").read_text()
    assert kinds(later, "StageFinished", "region:prepare")[0]["detail"]["passed"] is True
    assert map_state(map_path)["02_vector_math"]["status"] == "verified"


def test_map_edits_during_a_run(tmp_path: Path) -> None:
    slow = {**SCRIPT["01_load_points"], "sleep": 6}
    map_path = demo_repo(tmp_path, {"01_load_points": slow})
    run = start_foreman("run", str(map_path), "--headless")
    try:
        wait_for(lambda: bool(kinds(events(map_path), "WorkerStarted", "01_load_points")), 60, "a worker")
        doc = json.loads(map_path.read_text())
        doc["contents"]["09_cli"]["implementation"] += "\n\nNote from the worker: print usage on -h too."
        doc["contents"]["09_cli"]["verify"]["core"][1]["dispute"] = "usage errors exit 2 by convention, not 1"
        atomic_write(map_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
        wait_for(lambda: bool(kinds(events(map_path), "MapReloaded")), 30, "the content edit to be taken in")
        assert not kinds(events(map_path), "NodePaused")
        doc = json.loads(map_path.read_text())
        doc["graph"]["nodes"].append({"id": "10_plot", "label": "10. Plot", "type": "auxiliary"})
        atomic_write(map_path, (json.dumps(doc, indent=2, ensure_ascii=False) + "\n").encode())
        out, err = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 3, out + err
    evs = events(map_path)
    assert kinds(evs, "NodePaused", "map")[0]["detail"]["trigger"] == STRUCTURE_CHANGED
    assert kinds(evs, "DisputeRaised", "09_cli")[0]["detail"]["reason"] == "usage errors exit 2 by convention, not 1"
    assert kinds(evs, "NodeVerified", "01_load_points")  # the running node finished…
    assert not kinds(evs, "WorkerStarted", "03_seed_centroids")  # …but nothing new started
    final = json.loads(map_path.read_text())
    assert final["contents"]["09_cli"]["implementation"].endswith("print usage on -h too.")  # not lost
    assert final["graph"]["nodes"][-1]["id"] == "10_plot"
    assert final["state"]["nodes"]["01_load_points"]["status"] == "verified"


def test_feedback_notes_are_routed_and_the_file_renamed(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    feedback = map_path.parent / ".feedback.md"
    feedback.write_text(
        "# Notes\n\n[node:04_assign] keep the tie rule explicit in a comment\n\n[node:nope] this node does not exist\n"
    )
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 0, first.stdout + first.stderr
    assert feedback.exists()  # a note reached no node: the file is kept
    evs = events(map_path)
    routed = {e["node"]: e["detail"]["routed_as"] for e in kinds(evs, "FeedbackRouted")}
    assert routed == {"04_assign": "with its next task", None: 'not routed: no node has the id "nope"'}
    prompt = (map_path.parent / ".foreman" / "runs" / "04_assign" / "prompt-1.md").read_text()
    assert "keep the tie rule explicit in a comment" in prompt
    status = json.loads(foreman("status", str(map_path), "--json").stdout)
    assert [(m["line"], m["reason"]) for m in status["feedback_unmatched"]] == [(5, 'no node has the id "nope"')]
    feedback.write_text("# Notes\n\n[node:04_assign] keep the tie rule explicit in a comment\n")  # fixed by hand
    again = foreman("run", str(map_path), "--headless")
    assert again.returncode == 0, again.stdout + again.stderr
    assert not feedback.exists() and (map_path.parent / ".feedback.md.done").exists()
    assert len(kinds(events(map_path), "FeedbackRouted", "04_assign")) == 1  # taken once, not again
    assert json.loads(foreman("status", str(map_path), "--json").stdout)["feedback_unmatched"] == []
    (map_path.parent / "algorithm-map.feedback.md").write_text("[node:01_load_points] also accept TSV files\n")
    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 3, second.stdout + second.stderr
    pause = kinds(events(map_path), "NodePaused", "01_load_points")[-1]["detail"]
    assert pause["trigger"] == "feedback on a verified node" and "also accept TSV files" in pause["problem"]


def test_the_report_of_a_finished_run_matches_the_event_log(tmp_path: Path) -> None:
    result = foreman("demo", "--headless", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stdout + result.stderr
    map_path = tmp_path / "demo" / "project" / "algorithm-map.json"
    report = foreman("report", str(map_path))
    assert report.returncode == 0, report.stderr
    tables = parse_gates(report.stdout)
    expected: dict[str, dict[str, str]] = {}
    for event in events(map_path):
        node, d = event["node"], event["detail"]
        if event["kind"] == "CheckFinished" and not node.startswith(("region:", "end")):
            expected.setdefault(node, {})[f"{d['level']} {d['check']} {d['desc']}"] = d["status"]
        elif event["kind"] == "ReviewFinished":
            expected.setdefault(node, {})["review"] = d["verdict"]
    assert tables == expected
    assert "dispatch (attempt 2/3)" in report.stdout  # 04_assign's fix round
    html = foreman("report", str(map_path), "--format", "html", "-o", str(tmp_path / "r.html"))
    assert html.returncode == 0
    page = (tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<table>") >= 10 and "<td>pass</td>" in page
    logged = foreman("report", str(map_path), "--change-log")
    assert logged.returncode == 0
    change_log = (map_path.parent / "docs" / "change_log.md").read_text()
    assert change_log.count("<!-- foreman:") == 8
    foreman("report", str(map_path), "--change-log")
    assert (map_path.parent / "docs" / "change_log.md").read_text() == change_log  # entries are not repeated


def test_a_person_at_the_terminal_answers_the_pause(tmp_path: Path) -> None:
    """stdin is a terminal (a pseudo-terminal here): the run asks, and the typed answer is applied."""
    import pty
    import sys

    good = SCRIPT["02_vector_math"]
    map_path = demo_repo(
        tmp_path, {"02_vector_math": {"attempts": [broken_vector(1), broken_vector(2), broken_vector(3), good]}}
    )
    leader, follower = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FOREMAN_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "foreman_tui", "run", str(map_path), "--headless"],
        stdin=follower,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    os.close(follower)
    try:
        wait_for(lambda: bool(kinds(events(map_path), "NodePaused", "02_vector_math")), 60, "the pause")
        wait_for(lambda: bool(kinds(events(map_path), "NodeVerified", "01_load_points")), 60, "01 to finish")
        os.write(leader, b"A: compute the square of each difference\n")
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(leader)
    assert proc.returncode == 0, out + err
    assert "HARD PAUSE: [#1 same L1 check failed 3 times]" in err and "\a" in err  # the block, and the bell
    decision = kinds(events(map_path), "DecisionRecorded", "02_vector_math")[0]["detail"]
    assert (decision["option"], decision["text"]) == ("A", "compute the square of each difference")
    assert map_state(map_path)["02_vector_math"]["status"] == "verified"


def test_an_approval_gate_waits_for_a_person(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    doc = json.loads(map_path.read_text())
    doc["contents"]["03_seed_centroids"]["verify"]["core"][0]["approve"] = True
    map_path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    subprocess.run(["git", "commit", "-qam", "approval gate on the seeds"], cwd=map_path.parent, check=True)
    first = foreman("run", str(map_path), "--headless")
    assert first.returncode == 3, first.stdout + first.stderr
    pause = kinds(events(map_path), "NodePaused", "03_seed_centroids")[0]["detail"]
    assert pause["trigger"] == "approval gate" and "core[0]" in pause["problem"]
    assert not kinds(events(map_path), "ReviewFinished", "03_seed_centroids")  # nothing goes past the gate
    assert foreman("decide", str(map_path), "03_seed_centroids", "A", "--text", "seeds look right").returncode == 0
    second = foreman("run", str(map_path), "--headless")
    assert second.returncode == 0, second.stdout + second.stderr
    approved = kinds(events(map_path), "NodeApproved", "03_seed_centroids")[0]["detail"]
    assert approved["text"] == "seeds look right"
    assert map_state(map_path)["03_seed_centroids"]["status"] == "verified"
    assert "A) approve: go on — “seeds look right”" in foreman("report", str(map_path)).stdout


def test_a_merge_conflict_resolved_by_hand_continues(tmp_path: Path) -> None:
    nodes = {}
    for node, note in (("01_load_points", "points first\n"), ("02_vector_math", "vectors first\n")):
        nodes[node] = {**SCRIPT[node], "files": {**SCRIPT[node]["files"], "NOTES.md": note}, "sleep": 0.3}
    map_path = demo_repo(tmp_path, nodes)
    root = map_path.parent
    assert foreman("run", str(map_path), "--headless").returncode == 3
    loser = kinds(events(map_path), "MergeConflicted")[0]["node"]
    assert foreman("decide", str(map_path), loser, "A").returncode == 0
    early = foreman("run", str(map_path), "--headless")  # not merged yet: the decision does not apply
    assert early.returncode == 3
    ignored = kinds(events(map_path), "DecisionIgnored", loser)[0]["detail"]["reason"]
    assert "is not merged into main yet" in ignored
    merge = subprocess.run(["git", "merge", f"foreman/{loser}"], cwd=root, capture_output=True, text=True)
    assert merge.returncode != 0  # the same conflict, now for the person to resolve
    (root / "NOTES.md").write_text("points first\nvectors first\n")
    subprocess.run(["git", "add", "NOTES.md"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", f"merge {loser} by hand"], cwd=root, check=True)
    assert foreman("decide", str(map_path), loser, "A").returncode == 0
    done = foreman("run", str(map_path), "--headless")
    assert done.returncode == 0, done.stdout + done.stderr
    assert map_state(map_path)[loser]["status"] == "verified"
    assert not (root / ".foreman" / "worktrees" / loser).exists()
    assert (root / "NOTES.md").read_text() == "points first\nvectors first\n"
