"""Which process listens on a TCP port: ``python scripts/port_holder.py PORT`` prints ``pid N (command line)``.

Why: ``run_system.sh`` refuses to start when its ports are taken, and "already in use" alone leaves the operator
guessing (another ibsim? a TWS? the last run's engine?). Linux only: it reads ``/proc/net/tcp{,6}`` for the
listening socket's inode and ``/proc/<pid>/fd`` for its owner; prints nothing when the owner cannot be seen (another
user's process without root). Exit 0 always: this only adds detail to a message.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

LISTEN = "0A"


def listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def holders(inodes: set[str]) -> list[str]:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    found: list[str] = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
            if links & wanted:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append(f"pid {pid} ({cmdline.strip()[:200]})")
        except OSError:
            continue
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].isdigit():
        print("usage: port_holder.py PORT", file=sys.stderr)
        return 0
    print(", ".join(holders(listening_inodes(int(argv[0])))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
