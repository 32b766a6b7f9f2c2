"""Builders shared by the tests, made on the fly; no test module imports another.

By subject: `bootmaps` (zipl disks, hand-built or installed), `disks` (dump target
disks), `dumps` (s390 dumps, zcore/mem contents, disks holding a dump),
`registers` (CPU registers), `fakes` (machine, zcore, byte source, terminal, UI),
`checks` (shared assertions), `harness` (write logs, kill -9) and `tools`
(which external programs exist).
"""
