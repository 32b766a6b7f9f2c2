"""CKSM (the dump superblock checksum) against a plain copy of the same bytes, in one run.

The physical limit of a checksum over a disk range is reading that range; with
the bytes in memory it is touching them once.  This times, over the same
buffer of --size bytes (random, so no shortcut applies) in 1 MiB pieces:

* a plain copy: `bytes(piece)` of every piece (memcpy);
* `formats.dump_superblock.cksm` over the same pieces, chained through the seed
  as zipl/bootmap.superblock_checksum does.

and prints both throughputs and the ratio cksm/copy (repeat --repeat times,
median).  Run: `.venv/bin/python benchmarks/checksum.py [--size 256M] [--json]`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from zipldump.formats.dump_superblock import SB_SEED, cksm  # noqa: E402

PIECE = 1 << 20


def _size(text: str) -> int:
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    return int(text[:-1]) * units[text[-1].upper()] if text[-1].upper() in units else int(text)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=_size, default=256 << 20, help="bytes to sum (default 256M)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    buf = memoryview(os.urandom(args.size))
    copies, sums = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        for i in range(0, args.size, PIECE):
            bytes(buf[i : i + PIECE])
        copies.append(args.size / (time.perf_counter() - t))
        t = time.perf_counter()
        total = SB_SEED
        for i in range(0, args.size, PIECE):
            total = cksm(buf[i : i + PIECE], total)
        sums.append(args.size / (time.perf_counter() - t))
    ratios = [s / c for s, c in zip(sums, copies, strict=True)]
    result = {
        "bytes": args.size,
        "copy_mb_s": round(statistics.median(copies) / 1e6, 1),
        "cksm_mb_s": round(statistics.median(sums) / 1e6, 1),
        "ratio_cksm_to_copy": round(statistics.median(ratios), 3),
        "load": os.getloadavg()[0],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
