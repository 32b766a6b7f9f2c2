"""zipldump: zipl SCSI IPL and dump disks for IBM Z, in Python."""

__version__ = "0.1.0"
