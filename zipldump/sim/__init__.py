"""Simulated System z machine for SCSI IPL and dump: the crashed system, storage,
CPUs, HSA and SCLP SDIAS, the firmware loader, stage 3 and the dump kernel's zcore
driver; the dump writers it runs live in zipldump.dump.  See docs/simulator.md and docs/ipl-flow.md.
"""
