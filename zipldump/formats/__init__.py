"""Pure byte layouts: construct declarations shared by writer, reader and simulator.

No I/O here.  Every multi-byte zipl field is big-endian (zipl runs on s390x).
Each module asserts its structures' sizes at import time.
"""
