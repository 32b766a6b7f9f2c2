"""Dump tools: read s390 standalone dumps (`reader`), convert them to s390x ELF
cores and read ELF cores (`elf`), and find a dump on a disk image (`locate`)."""
