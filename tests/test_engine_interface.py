"""The stable interface any agent gets (SPEC §5), exercised with `preset = "command"` agents written as
small scripts, and resuming a node the map already calls implemented."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

from .engine_support import demo_repo, events, foreman, kinds, map_state, trust_map

AGENT = r"""
import json, os, subprocess, sys
from pathlib import Path
record = Path(sys.argv[1])
info = {"argv": sys.argv[2:], "cwd": os.getcwd(), "stdin_tty": sys.stdin.isatty(), "stdin": sys.stdin.read(),
        "env": {k: v for k, v in os.environ.items() if k.startswith("FOREMAN_") or k == "PYTHONUNBUFFERED"}}
with open(record, "a") as f:
    f.write(json.dumps(info) + "\n")
if os.environ["FOREMAN_ROLE"] == "reviewer":
    print("1. OK\nCLEAN — the adder adds")
    sys.exit(0)
node = os.environ["FOREMAN_NODE_ID"]
Path("adder.py").write_text("def add(a, b):\n    return a + b\n")
Path("_checkpoints").mkdir(exist_ok=True)
Path(f"_checkpoints/{node}.json").write_text(json.dumps({"node_id": node, "output": {"add(2,3)": 5}}))
subprocess.run(["git", "add", "adder.py", f"_checkpoints/{node}.json"], check=True)
subprocess.run(["git", "commit", "-qm", f"{node}\n\nForeman-Node: {node}"], check=True)
"""

MAP = {
    "version": "0.1.0",
    "meta": {"title": "adder"},
    "graph": {
        "nodes": [
            {"id": "start", "label": "Start", "type": "terminal"},
            {"id": "add_numbers", "label": "Add", "type": "process"},
        ],
        "edges": [{"from": "start", "to": "add_numbers"}],
    },
    "contents": {
        "add_numbers": {
            "title": "Add",
            "overview": "Add two numbers.",
            "implementation": "Files: `adder.py`",
            "verify": {
                "core": [
                    {"desc": "adds", "level": "L1", "cmd": 'python -c "import adder; assert adder.add(2, 3) == 5"'}
                ]
            },
        }
    },
}


def test_a_command_agent_gets_the_documented_environment_placeholders_and_stdin(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "algorithm-map.json").write_text(json.dumps(MAP, indent=2) + "\n")
    agent = tmp_path / "agent.py"
    agent.write_text(AGENT)
    record = tmp_path / "calls.jsonl"
    argv = [sys.executable, str(agent), str(record), "{node_id}", "{attempt}", "{workdir}", "{prompt_file}", "{map}"]
    (repo / "foreman.toml").write_text(
        f'[worker]\npreset = "command"\nargv = {json.dumps(argv)}\n\n'
        f'[reviewer]\npreset = "command"\nargv = {json.dumps(argv)}\n\n'
        f"[checks]\npython = {json.dumps(sys.executable)}\n"
    )
    for args in (
        ["init", "-q", "-b", "trunk"],
        ["config", "user.email", "t@t"],
        ["config", "user.name", "t"],
        ["add", "-A"],
        ["commit", "-qm", "map"],
    ):
        subprocess.run(["git", *args], cwd=repo, check=True)
    result = foreman("run", str(trust_map(repo / "algorithm-map.json")), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    worker, reviewer = [json.loads(line) for line in record.read_text().splitlines()]
    tree = str(repo / ".foreman" / "worktrees" / "add_numbers")
    map_path = str(repo / "algorithm-map.json")
    env = worker["env"]
    assert env["FOREMAN_NODE_ID"] == "add_numbers" and env["FOREMAN_ROLE"] == "worker"
    assert env["FOREMAN_ATTEMPT"] == "1" and env["FOREMAN_MAP"] == map_path
    assert env["FOREMAN_WORKDIR"] == tree == worker["cwd"]
    assert "FOREMAN_MESSAGE_FILE" not in env and env["PYTHONUNBUFFERED"] == "1"
    assert env["FOREMAN_EXECUTOR"] == "local" and env["FOREMAN_HOST"] == socket.gethostname()  # where it runs
    assert worker["argv"] == ["add_numbers", "1", tree, env["FOREMAN_PROMPT_FILE"], map_path]
    assert worker["stdin_tty"] is False and worker["stdin"] == ""
    prompt = Path(env["FOREMAN_PROMPT_FILE"]).read_text()
    assert "Add two numbers." in prompt and "- adder.py" in prompt and "Foreman-Node: add_numbers" in prompt
    assert reviewer["env"]["FOREMAN_ROLE"] == "reviewer"
    review = Path(reviewer["env"]["FOREMAN_PROMPT_FILE"]).read_text()
    assert "Node: add_numbers" in review and "def add(a, b):" in review and "CLEAN — no problems" in review
    assert map_state(repo / "algorithm-map.json")["add_numbers"]["status"] == "verified"
    log = subprocess.run(["git", "log", "--format=%s", "trunk"], cwd=repo, capture_output=True, text=True).stdout
    assert "foreman: merge add_numbers" in log and "foreman: add_numbers verified" in log


def test_a_node_the_map_calls_implemented_goes_straight_to_checks_and_review(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    root = map_path.parent
    solution = tmp_path / "demo" / "script" / "solution" / "01_load_points" / "kmeans" / "points.py"
    (root / "kmeans" / "points.py").write_text(solution.read_text())
    (root / "_checkpoints").mkdir()
    (root / "_checkpoints" / "01_load_points.json").write_text(
        json.dumps({"node_id": "01_load_points", "output": {"count": 30}})
    )
    doc = json.loads(map_path.read_text())
    doc["state"] = {"nodes": {"01_load_points": {"status": "implemented"}}}
    map_path.write_text(json.dumps(doc, indent=2) + "\n")
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", "commit", "-qm", "01 done by hand"], cwd=root, check=True)
    result = foreman("run", str(trust_map(map_path)), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    evs = events(map_path)
    assert not [e for e in kinds(evs, "WorkerStarted", "01_load_points") if e["detail"]["role"] == "worker"]
    assert kinds(evs, "NodeRecovered", "01_load_points")[0]["detail"]["now"] == "checking"
    assert [e["detail"]["status"] for e in kinds(evs, "CheckFinished", "01_load_points") if e["detail"]["cmd"]] == [
        "pass"
    ]
    assert kinds(evs, "ReviewFinished", "01_load_points")[0]["detail"]["verdict"] == "CLEAN"
    assert map_state(map_path)["01_load_points"]["status"] == "verified"


def test_a_merge_and_a_map_write_cut_short_by_a_dead_run_are_cleaned_up(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path)
    root = map_path.parent

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)

    (root / "notes.txt").write_text("base\n")
    git("add", "notes.txt")
    git("commit", "-qm", "notes")
    git("checkout", "-qb", "other")
    (root / "notes.txt").write_text("theirs\n")
    git("commit", "-qam", "theirs")
    git("checkout", "-q", "main")
    (root / "notes.txt").write_text("ours\n")
    git("commit", "-qam", "ours")
    conflicted = subprocess.run(["git", "merge", "other"], cwd=root, capture_output=True, text=True)
    assert conflicted.returncode != 0 and (root / ".git" / "MERGE_HEAD").exists()
    stale = root / f".{map_path.name}.abc123.tmp"
    stale.write_text("{ half a map")
    result = foreman("run", str(map_path), "--headless")
    assert result.returncode == 0, result.stdout + result.stderr
    assert not (root / ".git" / "MERGE_HEAD").exists() and not stale.exists()
    recovered = kinds(events(map_path), "NodeRecovered")
    assert recovered[0]["detail"]["was"] == "merging"
    assert (root / "notes.txt").read_text() == "ours\n"


def test_an_agent_that_cannot_start_pauses_the_node_with_the_reason(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="retries = 0\n")
    agent = map_path.parent / "agent.sh"  # there and executable (preflight passes), but its interpreter is not
    agent.write_text("#!/no/such/interpreter\n")
    agent.chmod(0o755)
    toml = map_path.parent / "foreman.toml"
    toml.write_text(
        'retries = 0\n[worker]\npreset = "command"\nargv = ["./agent.sh"]\n\n[reviewer]\npreset = "scripted"\n'
    )
    subprocess.run(["git", "add", "-A"], cwd=map_path.parent, check=True)
    subprocess.run(["git", "commit", "-qm", "an agent that cannot start"], cwd=map_path.parent, check=True)
    result = foreman("run", str(trust_map(map_path)), "--headless")
    assert result.returncode == 3, result.stdout + result.stderr
    pauses = kinds(events(map_path), "NodePaused")
    assert {p["node"] for p in pauses} == {"01_load_points", "02_vector_math"}
    assert all("the agent could not start" in p["detail"]["problem"] for p in pauses)


def test_refusals_are_bad_input_with_a_clear_message(tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "algorithm-map.json").write_text(json.dumps(MAP))
    outside = foreman("run", str(loose / "algorithm-map.json"), "--headless")
    assert outside.returncode == 2 and "is not inside a git repository" in outside.stderr
    map_path = demo_repo(tmp_path, {"01_load_points": {"commit": False}}, settings="retries = 0\n")
    assert foreman("run", str(map_path), "--headless").returncode == 3
    subprocess.run(["git", "checkout", "-qb", "elsewhere"], cwd=map_path.parent, check=True)
    wrong = foreman("run", str(map_path), "--headless")
    assert wrong.returncode == 2 and "check out 'main'" in wrong.stderr and "Traceback" not in wrong.stderr


def test_keep_worktrees_and_json_lines(tmp_path: Path) -> None:
    map_path = demo_repo(tmp_path, settings="keep_worktrees = true\n")
    result = foreman("run", str(map_path), "--headless", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    printed = [json.loads(line) for line in result.stdout.splitlines()]
    assert printed == events(map_path)  # the printed stream is the event log, line for line
    assert {"time", "ts", "node", "kind", "detail"} == set(printed[0])
    branches = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname:short)", "refs/heads/foreman/"],
        cwd=map_path.parent,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert "foreman/01_load_points" in branches and len(branches) == 8
    assert (map_path.parent / ".foreman" / "worktrees" / "09_cli" / "kmeans" / "__main__.py").exists()
