"""Dumps: the s390 and ELF formats in and out (s390, elf), finding a dump on a disk (locate), the zfcpdump
writers (write_partition, write_fs) and their parameters (params), and verify."""
