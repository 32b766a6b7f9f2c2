"""Dump throughput and memory of the simulator against `dd`, on the same disk, and the demo's time.

First it times `zipldump demo` (default 2 GiB, 4 CPUs: make disk, install, IPL,
dump, verify) in a child process: wall time and peak RSS (target < 60 s).

Then, for each crashed-system size (default 1, 4 and 8 GiB) this

1. builds a demo dump disk (msdos, dump partition sized for the dump + zipl's
   tail, the bundled demo dump tool installed with --dumpto) in --dir;
2. runs one simulated SCSI dump IPL in a *child process*
   (generated crashed system -> machine -> firmware load -> stage 3 -> zcore/mem
   -> partition writer into the image file, no --verify) and takes that child's
   peak RSS from the rusage wait4() returns for it (getrusage(RUSAGE_CHILDREN)
   would mix in earlier children);
3. deletes the image and times `dd if=/dev/zero of=FILE bs=4M conv=fsync` for
   exactly the same number of bytes in the same directory;
4. repeats 2-3 (`--repeat`, default 3; fresh image and fresh dd file each time,
   `sync` before each timed run, alternating which of the two goes first, after
   one unmeasured dd of the same size as a warm-up) and reports the throughputs, the median of the
   per-pair ratios dump/dd (target >= 0.8; adjacent pairs see the same machine
   load, which matters on a shared 2-core box) and the peak RSS (target < 100 MiB).

The dump time is the whole dump the simulated dump kernel's dump tool performs
(DumpResult.seconds): from opening zcore/mem (reading its header) through the
busy marker, memory, end marker, header and superblock to the final fsync.
dd's time is its whole run, fsync included.

Run: `make bench`, or `.venv/bin/python benchmarks/dump_throughput.py [--sizes 1G,4G] [--json]`.
Needs about the largest size in free space in --dir.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GiB = 1 << 30
MiB = 1 << 20
RATIO_TARGET = 0.8
RSS_TARGET = 100 * MiB
DEMO_TARGET = 60.0  # seconds
HEADER_AND_MARKER = 4096 + 16  # s390 dump header + end marker around the memory


def child(image: str, memory: int, cpus: int, block_size: int) -> None:
    """The measured process: one simulated dump IPL; prints its report as JSON."""
    from zipldump.sim.scsi_ipl import IplOptions, run_ipl
    from zipldump.ui import UI

    ui = UI(quiet=True, interactive=False)
    report = run_ipl(IplOptions(image=Path(image), memory_size=memory, cpus=cpus, block_size=block_size), ui)
    d = report.to_json()
    json.dump({"dump": d["dump"], "steps": d["steps"], "seconds": d["seconds"]}, sys.stdout)


def run_child(image: Path, memory: int, cpus: int, block_size: int) -> tuple[dict, int, float, float]:
    """Run the dump in a child; its own peak RSS comes from wait4's rusage."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, __file__, "--child", str(image), str(memory), str(cpus), str(block_size)],
            stdout=out,
            stderr=err,
            cwd=REPO,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"dump child failed ({proc.returncode}):\n{err.read()}")
        cpu = usage.ru_utime + usage.ru_stime
        return json.loads(out.read()), usage.ru_maxrss * 1024, wall, cpu  # ru_maxrss is in KiB on Linux


def run_dd(path: Path, nbytes: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for dd to write exactly nbytes of zeros with fsync."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        ["dd", "if=/dev/zero", f"of={path}", "bs=4M", f"count={nbytes}", "iflag=count_bytes", "conv=fsync", "status=none"]
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    secs = time.monotonic() - t0
    if proc.returncode:
        raise SystemExit(f"dd failed ({proc.returncode})")
    path.unlink()
    return secs, usage.ru_utime + usage.ru_stime


def run_demo(directory: Path) -> dict:
    """`zipldump demo --dir DIRECTORY` in a child: wall seconds, peak RSS, its own step times."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "zipldump", "demo", "--dir", str(directory), "--json"], stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"zipldump demo failed ({proc.returncode}):\n{err.read()}")
        try:
            steps = json.loads(out.read()).get("steps")
        except (ValueError, AttributeError):
            steps = None
    return {
        "wall_seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss * 1024 / MiB, 1),
        "steps": steps,
        "ok": wall < DEMO_TARGET,
    }


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_facts(directory: Path) -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    fs = subprocess.run(["df", "-T", str(directory)], capture_output=True, text=True).stdout.splitlines()[-1].split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gib": round(mem / GiB, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "filesystem": f"{fs[1]} on {fs[0]}" if len(fs) > 1 else "unknown",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1G,4G,8G", help="crashed-system memory sizes (default 1G,4G,8G)")
    ap.add_argument("--cpus", type=int, default=4)
    ap.add_argument("--block-size", type=int, default=512, choices=(512, 4096))
    ap.add_argument("--dir", type=Path, default=REPO / "disk-images", help="where the images go (same disk for dd)")
    ap.add_argument("--repeat", type=int, default=3, help="dump/dd pairs per size; the median pair ratio counts (default 3)")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]), int(args.child[2]), int(args.child[3]))
        return 0

    from zipldump.commands.demo import build_demo_disk
    from zipldump.disk.partitions import parse_size
    from zipldump.ui import UI

    ui = UI(quiet=True, interactive=False)
    sizes = [parse_size(s.strip()) for s in args.sizes.split(",") if s.strip()]
    args.dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-", dir=args.dir))
    rows = []
    ok = True
    load_before = load_average()
    try:
        demo_row = run_demo(work / "demo")
        ok &= demo_row["ok"]
        shutil.rmtree(work / "demo", ignore_errors=True)
        if not args.json:
            print(
                f"zipldump demo: {demo_row['wall_seconds']} s wall, {demo_row['cpu_seconds']} s CPU, "
                f"peak RSS {demo_row['peak_rss_mib']} MiB {'ok' if demo_row['ok'] else 'OVER TARGET'}",
                flush=True,
            )
        for mem in sizes:
            pairs = []
            # Unmeasured warm-up of the same size: the first big writer after a
            # pause pays for page-cache reclaim, whoever it is.
            run_dd(work / "warmup.img", HEADER_AND_MARKER + mem)
            for rep in range(args.repeat):
                # Fresh image and fresh dd file each time: both allocate their blocks.
                # Alternate who goes first, so neither always inherits the other's writeback.
                demo = build_demo_disk(work, mem, ui, block_size=args.block_size)
                nbytes = HEADER_AND_MARKER + mem
                dd_secs = None
                if rep % 2:
                    os.sync()
                    dd_secs, dd_cpu = run_dd(work / "dd.img", nbytes)
                os.sync()  # nobody else's dirty pages in our timing
                out, rss, wall, cpu = run_child(demo.image, mem, args.cpus, args.block_size)
                dump = out["dump"]
                assert dump["bytes_written"] == nbytes, dump
                demo.image.unlink()
                if dd_secs is None:
                    os.sync()
                    dd_secs, dd_cpu = run_dd(work / "dd.img", nbytes)
                pairs.append({"dump_seconds": dump["seconds"], "dd_seconds": dd_secs, "rss": rss, "wall": wall,
                              "cpu": cpu, "dd_cpu": dd_cpu, "steps": out["steps"], "bytes": nbytes, "dump_first": not rep % 2})
            ratios = sorted(p["dd_seconds"] / p["dump_seconds"] for p in pairs)
            ratio = ratios[len(ratios) // 2]  # median of the adjacent dump/dd pairs
            best_dump = min(p["dump_seconds"] for p in pairs)
            best_dd = min(p["dd_seconds"] for p in pairs)
            rss = max(p["rss"] for p in pairs)
            nbytes = pairs[0]["bytes"]
            row = {
                "memory_gib": mem / GiB,
                "bytes": nbytes,
                "repeats": args.repeat,
                "dump_mib_s_best": round(nbytes / best_dump / MiB, 1),
                "dd_mib_s_best": round(nbytes / best_dd / MiB, 1),
                "dump_mib_s_each": [round(nbytes / p["dump_seconds"] / MiB, 1) for p in pairs],
                "dd_mib_s_each": [round(nbytes / p["dd_seconds"] / MiB, 1) for p in pairs],
                "ratio_median": round(ratio, 3),
                "ratio_best": round(best_dd / best_dump, 3),
                "peak_rss_mib": round(rss / MiB, 1),
                "dump_cpu_seconds": [round(p["cpu"], 2) for p in pairs],
                "dd_cpu_seconds": [round(p["dd_cpu"], 2) for p in pairs],
                "dump_first": [p["dump_first"] for p in pairs],
                "child_wall_seconds": [round(p["wall"], 2) for p in pairs],
                "steps": pairs[-1]["steps"],
            }
            row["ok"] = ratio >= RATIO_TARGET and rss < RSS_TARGET
            ok &= row["ok"]
            rows.append(row)
            if not args.json:
                print(
                    f"{mem / GiB:g} GiB: dump {row['dump_mib_s_each']} MiB/s, dd {row['dd_mib_s_each']} MiB/s, "
                    f"ratio median {row['ratio_median']:.2f} (best-of {row['ratio_best']:.2f}), "
                    f"peak RSS {row['peak_rss_mib']} MiB {'ok' if row['ok'] else 'BELOW TARGET'}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": machine_facts(args.dir),
        "load_average": {"before": load_before, "after": load_average()},
        "targets": {"ratio": RATIO_TARGET, "peak_rss_mib": RSS_TARGET / MiB, "demo_seconds": DEMO_TARGET},
        "demo": demo_row,
        "results": rows,
        "ok": ok,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(json.dumps({"machine": result["machine"], "load_average": result["load_average"]}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
