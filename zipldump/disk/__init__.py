"""Disk access: block I/O over images and devices, partition tables, ext2/3/4 file systems."""
