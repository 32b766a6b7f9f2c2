"""Real firmware: QEMU's s390-ccw boot runner (boot) and the Debian s390x packages it boots (packages)."""
