"""Issue #17 case 9: `kill -9` of `gridmap partition` leaves no worker processes behind.

The command runs for real (a subprocess of this venv's `gridmap`) over the demo city, whose 756
courtyards are above ``PARALLEL_FROM``, so it plans them in a pool of worker processes; the parent is
killed with SIGKILL (no handler, no cleanup of its own) once its workers exist.  The kernel must end
them (``PR_SET_PDEATHSIG`` in services/partitioning.py): none may outlive it by more than a few
seconds.  A dry run, so the shared demo database is only read."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import sqlalchemy as sa

from gridmap.services.partitioning import PARALLEL_FROM
from gridmap.store import db

from servers import GRIDMAP


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found |= {int(c) for c in (task / "children").read_text().split()}
        except OSError:  # the task ended meanwhile
            pass
    return found


def _descendants(pid: int) -> set[int]:
    out, todo = set(), [pid]
    while todo:
        for child in _children(todo.pop()) - out:
            out.add(child)
            todo.append(child)
    return out


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting for whoever inherited it to reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_kill_9_of_partition_leaves_no_workers(demo_url):
    with db.engine(demo_url).connect() as conn:
        yards = conn.execute(sa.text("SELECT count(*) FROM grid WHERE level = 'courtyard' AND valid_to IS NULL"))
        assert yards.scalar_one() >= PARALLEL_FROM, "the demo city no longer has enough courtyards for workers"
    proc = subprocess.Popen(
        [GRIDMAP, "partition", "--all", "--dry-run", "--format", "json"],
        env={**os.environ, "GRIDMAP_DATABASE_URL": demo_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    seen: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(seen) < 2 and proc.poll() is None and time.monotonic() < deadline:
            seen |= _descendants(proc.pid)
            time.sleep(0.05)
        assert len(seen) >= 2, f"no worker processes appeared (exit {proc.poll()})"
        time.sleep(0.5)  # let the workers take their first batches
        seen |= _descendants(proc.pid)
        assert all(_alive(pid) for pid in seen), "a worker ended before its parent was killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        deadline = time.monotonic() + 5
        while any(_alive(pid) for pid in seen) and time.monotonic() < deadline:
            time.sleep(0.05)
        survivors = sorted(pid for pid in seen if _alive(pid))
        assert not survivors, f"worker processes {survivors} outlived the killed `gridmap partition`"
    finally:
        for pid in seen | {proc.pid}:  # only the processes this test started, by their ids
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
