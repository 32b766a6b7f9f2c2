"""Simulated System z machine for SCSI IPL and dump: the crashed system, storage,
CPUs, HSA and SCLP SDIAS, the firmware loader, stage 3, the dump kernel's zcore
driver and the zfcpdump-style writers.  See docs/simulator.md and docs/ipl-flow.md.
"""
