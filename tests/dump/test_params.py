"""The two dumper generations read the dump kernel's command line differently (dump/params.py)."""

from __future__ import annotations

import pytest

from zipldump.dump.params import cmdline_keys, parse_dump_cmdline, parse_for_generation, parse_partition_cmdline
from zipldump.errors import UsageError

# zipl 2.16's --dumpto parmline (zipl-scsi-format.md §13.6): the partition number after dump_mem=.
ZIPL_216 = "root=/dev/ram0 dump_mem=1 possible_cpus=1 cgroup_disable=memory "


def test_zipl_216_parmline_is_inert_for_the_partition_dumper() -> None:
    p = parse_partition_cmdline(ZIPL_216)
    assert p.dump_mem is None and p.dump_debug == 2 and p.warnings == () and p.seen == ()
    # The file-system dumper (zfcpdump 2.x) would refuse the same line: one byte is no page.
    with pytest.raises(UsageError, match="leaves less than one 4096-byte page"):
        parse_dump_cmdline(ZIPL_216)


def test_partition_dumper_reads_only_dump_debug() -> None:
    p = parse_partition_cmdline("dump_part=99 dump_mem=x dump_mode=fast dump_dir= dump_debug=5")
    assert p.seen == ("dump_debug",) and p.dump_debug == 5 and p.warnings == ()
    assert (p.dump_part, p.dump_dir, p.dump_mode, p.dump_mem) == (1, "/", "interactive", None)
    bad = parse_partition_cmdline("dump_debug=9")
    assert bad.dump_debug == 2 and bad.warnings == ("dump_debug '9' is not 1..6, using 2",)


def test_generation_dispatch_and_keys() -> None:
    assert parse_for_generation(ZIPL_216, "partition") == parse_partition_cmdline(ZIPL_216)
    fs = "root=/dev/ram0 dump_part=2 dump_mem=0x4000000 possible_cpus=1"
    assert parse_for_generation(fs, "fs") == parse_dump_cmdline(fs)
    assert parse_for_generation(fs, "fs").dump_mem == 0x4000000
    assert cmdline_keys(ZIPL_216) == ("root", "dump_mem", "possible_cpus", "cgroup_disable")
    assert cmdline_keys("quiet a=b =c") == ("a", "")
    with pytest.raises(ValueError):
        parse_for_generation(fs, "lkcd")
