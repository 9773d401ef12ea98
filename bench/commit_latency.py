"""Time from `git commit` returning to the engine's commit event, with file-system events vs polling.

    python bench/commit_latency.py [--commits 40] [--poll 0.5]

A real repository in a temporary folder, a worktree on `foreman/n1` (as the supervisor makes for a node),
the engine's own CommitMonitor tracking it, and real `git commit` processes. Prints median and p95.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from foreman_tui.engine.gitrepo import CommitInfo, Repo
from foreman_tui.engine.watcher import CommitMonitor


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_repo(root: Path) -> tuple[Repo, Path, str]:
    repo_dir = root / "repo"
    repo_dir.mkdir()
    _git(repo_dir, "init", "-q", "-b", "main")
    _git(repo_dir, "config", "user.email", "bench@foreman.invalid")
    _git(repo_dir, "config", "user.name", "bench")
    (repo_dir / "README").write_text("bench\n")
    _git(repo_dir, "add", "-A")
    _git(repo_dir, "commit", "-qm", "start")
    repo = Repo(repo_dir)
    tree = repo_dir / ".foreman" / "worktrees" / "n1"
    base = repo.add_worktree("n1", tree, repo.head())
    return repo, tree, base


async def measure(commits: int, use_fs: bool, poll: float) -> list[float]:
    with tempfile.TemporaryDirectory() as folder:
        repo, tree, base = make_repo(Path(folder))
        seen: dict[str, float] = {}
        arrived = asyncio.Event()

        def found(node: str, commit: CommitInfo, by: str, at: float) -> None:
            seen[commit.sha] = at
            arrived.set()

        monitor = CommitMonitor(repo, found, poll_interval=poll, use_fs_events=use_fs)
        monitor.track("n1", base, "foreman/n1")
        runner = asyncio.create_task(monitor.run())
        await asyncio.sleep(0.5)  # let the watcher settle
        latencies = []
        for i in range(commits):
            (tree / f"f{i}.txt").write_text(str(i))
            add = await asyncio.create_subprocess_exec("git", "add", f"f{i}.txt", cwd=tree)
            await add.wait()
            arrived.clear()
            commit = await asyncio.create_subprocess_exec("git", "commit", "-qm", f"c{i}", cwd=tree)
            await commit.wait()
            returned = time.time()
            sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tree, capture_output=True, text=True).stdout.strip()
            while sha not in seen:
                await asyncio.wait_for(arrived.wait(), timeout=poll * 4 + 5)
                arrived.clear()
            latencies.append(seen[sha] - returned)
            await asyncio.sleep(0.05)
        monitor.close()
        await runner
        return latencies


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return (
        f"{name:<22} n={len(ms):<3} median {statistics.median(ms):7.1f} ms   p95 {p95:7.1f} ms   max {ms[-1]:7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=40)
    parser.add_argument("--poll", type=float, default=0.5, help="poll interval for the polling-only run")
    args = parser.parse_args()
    fs = asyncio.run(measure(args.commits, use_fs=True, poll=30.0))
    polled = asyncio.run(measure(max(10, args.commits // 2), use_fs=False, poll=args.poll))
    print(summary("file-system events", fs))
    print(summary(f"polling every {args.poll:g}s", polled))
    return 0


if __name__ == "__main__":
    sys.exit(main())
