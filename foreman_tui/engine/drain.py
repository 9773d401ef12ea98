"""Keeps a worker's output flowing after foreman quits with "leave them running".

    python -m foreman_tui.engine.drain LOG FD [FD ...]

foreman hands over the read ends of a worker's stdout and stderr pipes (inherited as FDs); this process
appends whatever arrives to the attempt's log until every pipe is closed, so the worker never meets a
broken pipe. The next ``foreman`` run takes the worker over and reads the same log.
"""

from __future__ import annotations

import os
import selectors
import sys

CHUNK = 64 * 1024


def drain(log_path: str, fds: list[int]) -> None:
    selector = selectors.DefaultSelector()
    for fd in fds:
        os.set_blocking(fd, True)
        selector.register(fd, selectors.EVENT_READ)
    with open(log_path, "ab") as log:
        while selector.get_map():
            for key, _ in selector.select():
                chunk = os.read(key.fd, CHUNK)
                if chunk:
                    log.write(chunk)
                    log.flush()
                else:
                    selector.unregister(key.fd)
                    os.close(key.fd)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print("usage: python -m foreman_tui.engine.drain LOG FD [FD ...]", file=sys.stderr)
        return 2
    drain(argv[0], [int(fd) for fd in argv[1:]])
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
