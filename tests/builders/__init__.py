"""Builders shared by the tests: disks, dumps and fakes, made on the fly (no test module imports another)."""
