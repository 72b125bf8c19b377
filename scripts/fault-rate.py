#!/usr/bin/env python3
"""How fast this machine faults fresh memory in: maps SIZE MiB of anonymous
memory (asking for huge pages, as the simulator's big blocks get them), writes
one byte a 4 KiB page, unmaps it, and again ROUNDS times; prints GB/s a round.

On a VM whose balloon reports free pages to the hypervisor (virtio
VIRTIO_BALLOON_F_REPORTING), pages freed more than a few seconds ago are given
back to the host, and the first touch of each pays a fault on the host as well:
the first round is slow, the next ones (the same pages, freed a moment ago)
are not. That first round is what a fresh `teardown sim --shards 1` pays for
its 290 MB (docs/performance.md, "A fresh process's first run").

usage: scripts/fault-rate.py [SIZE_MIB=1000] [ROUNDS=3]
"""
import mmap
import sys
import time


def round_gbps(size):
    m = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        m.madvise(mmap.MADV_HUGEPAGE)
    t = time.perf_counter()
    for i in range(0, size, 4096):
        m[i] = 1
    dt = time.perf_counter() - t
    m.close()
    return dt, size / dt / 1e9


def main():
    mib = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    for r in range(rounds):
        dt, gbps = round_gbps(mib << 20)
        print(f"round {r}: {mib} MiB faulted in {dt:.3f} s, {gbps:.2f} GB/s")


if __name__ == "__main__":
    main()
