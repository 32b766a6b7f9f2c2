"""SCLP "Store Data In Absolute Storage" (SDIAS): the HSA read interface,
s390-dump-format.md §5.7 and §6.

Two layers:

* `Sdias.service_call(command, sccb)` is the machine side: it takes a 68-byte
  SDIAS SCCB (bytearray, big-endian, packed, §6.2), performs the request and
  writes the response code, event status, event-buffer flags and block count
  back into it.  A copy stores HSA blocks into machine storage at `asa`.
* `blk_count()`, `copy()`, `hsa_size()`, `release()` are the dump kernel's
  side (Linux `sclp_sdias.c`): they build SCCBs, call `service_call` and turn
  bad answers into SclpError.

Block numbering (§5.7): blocks start at 1; HSA page p is block p + 2; the size
query answers blk_cnt = hsa_size / 4096 + 1, so hsa_size = (blk_cnt - 1) * 4096.
Block 1's content is not documented; this model stores 4096 zero bytes for it.

Answers of this model (§6.4 where the spec gives them; the rest are choices):

| situation | response | event_status | blk_cnt out |
|---|---|---|---|
| size query, HSA present | 0x0020 | 0x00 | hsa_size/4096 + 1 |
| size query after release / no dump IPL | 0x0020 | 0x00 | 0 ("not available", §6.5) |
| copy, all blocks inside 1..blk_cnt | 0x0020 | 0x00 ALL_STORED | nr |
| copy running past the last block | 0x0020 | 0x10 PART_STORED | blocks stored |
| copy: fbn 0 or > last, nr 0, after release, data_id != 0, destination outside storage or above 2 GiB with asa_size 0 | 0x0020 | 0x03 NO_DATA | 0 |
| command other than write event data | 0x01F0 invalid SCLP command | — | — |
| SCCB length field < 68 | 0x0300 insufficient SCCB length | — | — |
| event buffer length != 60 | 0x73F0 event buffer syntax error | — | — |
| event type != 0x1C | 0x40F0 invalid function | — | — |

Accepted event buffers get flag 0x80 (checked by newer kernels, §6.2).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from zipldump.errors import SclpError
from zipldump.formats.sccb import (
    EVBUF_LEN,
    OFF_BLK_CNT,
    OFF_EV_FLAGS,
    OFF_EVENT_STATUS,
    OFF_RESPONSE,
    SCCB_FIELDS,
    SCCB_LEN,
    SdiasSccb,
)
from zipldump.sim.storage import PAGE_SIZE

if TYPE_CHECKING:
    from zipldump.sim.machine import Machine

EVTYP_SDIAS = 0x1C
EVTYP_SDIAS_MASK = 0x00000010
SCLP_CMDW_WRITE_EVENT_DATA = 0x00760005
SCLP_CMDW_READ_EVENT_DATA = 0x00770005
SCLP_CMDW_WRITE_EVENT_MASK = 0x00780005
SDIAS_EQ_STORE_DATA = 0x0
SDIAS_EQ_SIZE = 0x1
SDIAS_DI_FCP_DUMP = 0x0
SDIAS_ASA_SIZE_32 = 0x0
SDIAS_ASA_SIZE_64 = 0x1
SDIAS_EVSTATE_ALL_STORED = 0x00
SDIAS_EVSTATE_NO_DATA = 0x03
SDIAS_EVSTATE_PART_STORED = 0x10
SDIAS_EVENT_ID = 4712
EVBUF_ACCEPTED = 0x80

SCLP_RC_NORMAL_COMPLETION = 0x0020
SCLP_RC_INVALID_SCLP_COMMAND = 0x01F0
SCLP_RC_INSUFFICIENT_SCCB_LENGTH = 0x0300
SCLP_RC_INVALID_FUNCTION = 0x40F0
SCLP_RC_EVENT_BUFFER_SYNTAX_ERROR = 0x73F0

FIRST_DATA_BLOCK = 2  # HSA page 0

# Hot path: one SCCB is built and parsed per HSA block (8192 for 32 MiB), and
# construct costs ~55 us per round trip against ~0.3 us for struct (measured),
# so the machine and kernel sides use struct on the layout of formats/sccb.py.
SDIAS_SCCB = struct.Struct(">H B 3x H" " H B B 2x" " B B 8x I" " 2x B B 4x" " I Q 4x I" " 4x I 2x H")
_PROBE = tuple(range(1, len(SCCB_FIELDS) + 1))
assert SDIAS_SCCB.size == SCCB_LEN
assert SDIAS_SCCB.pack(*_PROBE) == SdiasSccb.build(dict(zip(SCCB_FIELDS, _PROBE, strict=True)))


def build_sccb(*, event_qual: int, blk_cnt: int = 0, asa: int = 0, fbn: int = 0, asa_size: int = SDIAS_ASA_SIZE_64,
               data_id: int = SDIAS_DI_FCP_DUMP, ev_type: int = EVTYP_SDIAS, length: int = SCCB_LEN,
               ev_length: int = EVBUF_LEN) -> bytearray:
    """An SDIAS request as Linux builds it (dbs 1, event_id 4712)."""
    return bytearray(
        SDIAS_SCCB.pack(length, 0, 0, ev_length, ev_type, 0, event_qual, data_id, SDIAS_EVENT_ID, asa_size, 0, blk_cnt, asa, fbn, 0, 1)
    )


def parse_sccb(sccb: bytes | bytearray) -> dict[str, int]:
    return dict(zip(SCCB_FIELDS, SDIAS_SCCB.unpack_from(sccb), strict=True))


class Sdias:
    """The SDIAS event of one machine (`machine.hsa`, `machine.storage`)."""

    def __init__(self, machine: Machine) -> None:
        self.machine = machine
        self.requests = 0  # service calls answered (for tests and statistics)

    # -- machine side -------------------------------------------------------------
    def service_call(self, command: int, sccb: bytearray) -> int:
        """Process one SCCB; returns condition code 0 (accepted)."""
        if len(sccb) < 8:
            raise SclpError(f"SCCB of {len(sccb)} bytes has no header", where="SCLP service call")
        self.requests += 1
        length = int.from_bytes(sccb[0:2], "big")
        if command != SCLP_CMDW_WRITE_EVENT_DATA:
            return self._respond(sccb, SCLP_RC_INVALID_SCLP_COMMAND)
        if length < SCCB_LEN or len(sccb) < SCCB_LEN:
            return self._respond(sccb, SCLP_RC_INSUFFICIENT_SCCB_LENGTH)
        f = SDIAS_SCCB.unpack_from(sccb)
        ev_length, ev_type, event_qual, data_id = f[3], f[4], f[6], f[7]
        asa_size, blk_cnt, asa, fbn = f[9], f[11], f[12], f[13]
        if ev_length != EVBUF_LEN:
            return self._respond(sccb, SCLP_RC_EVENT_BUFFER_SYNTAX_ERROR)
        if ev_type != EVTYP_SDIAS:
            return self._respond(sccb, SCLP_RC_INVALID_FUNCTION)
        sccb[OFF_EV_FLAGS] |= EVBUF_ACCEPTED
        hsa = self.machine.hsa
        if hsa is not None and not hsa.available:
            hsa = None  # released: as if never saved
        if event_qual == SDIAS_EQ_SIZE:
            last = hsa.size // PAGE_SIZE + 1 if hsa is not None else 0
            return self._respond(sccb, SCLP_RC_NORMAL_COMPLETION, SDIAS_EVSTATE_ALL_STORED, last)
        if event_qual != SDIAS_EQ_STORE_DATA or data_id != SDIAS_DI_FCP_DUMP or hsa is None:
            return self._respond(sccb, SCLP_RC_NORMAL_COMPLETION, SDIAS_EVSTATE_NO_DATA, 0)
        last = hsa.size // PAGE_SIZE + 1
        storage = self.machine.storage
        if blk_cnt == 0 or fbn < 1 or fbn > last or asa % PAGE_SIZE:
            return self._respond(sccb, SCLP_RC_NORMAL_COMPLETION, SDIAS_EVSTATE_NO_DATA, 0)
        nr = min(blk_cnt, last - fbn + 1)
        if asa + nr * PAGE_SIZE > storage.size or (asa_size == SDIAS_ASA_SIZE_32 and asa + nr * PAGE_SIZE > 1 << 31):
            return self._respond(sccb, SCLP_RC_NORMAL_COMPLETION, SDIAS_EVSTATE_NO_DATA, 0)
        buf = bytearray(nr * PAGE_SIZE)
        mv = memoryview(buf)
        first = fbn
        if first == 1:  # block 1: undocumented content, stored as zeros
            first = 2
        if first <= fbn + nr - 1:
            off = (first - fbn) * PAGE_SIZE
            hsa.readinto((first - FIRST_DATA_BLOCK) * PAGE_SIZE, mv[off:])
        storage.write(asa, buf)
        status = SDIAS_EVSTATE_ALL_STORED if nr == blk_cnt else SDIAS_EVSTATE_PART_STORED
        return self._respond(sccb, SCLP_RC_NORMAL_COMPLETION, status, nr)

    @staticmethod
    def _respond(sccb: bytearray, response: int, status: int | None = None, blk_cnt: int | None = None) -> int:
        sccb[OFF_RESPONSE : OFF_RESPONSE + 2] = response.to_bytes(2, "big")
        if status is not None:
            sccb[OFF_EVENT_STATUS] = status
        if blk_cnt is not None:
            sccb[OFF_BLK_CNT : OFF_BLK_CNT + 4] = blk_cnt.to_bytes(4, "big")
        return 0

    # -- dump kernel side ------------------------------------------------------------
    def blk_count(self) -> int:
        """SDIAS size query (`sclp_sdias_blk_count`): the number of HSA blocks."""
        sccb = build_sccb(event_qual=SDIAS_EQ_SIZE)
        self.service_call(SCLP_CMDW_WRITE_EVENT_DATA, sccb)
        r = parse_sccb(sccb)
        if r["response_code"] != SCLP_RC_NORMAL_COMPLETION:
            raise SclpError(f"SCLP response 0x{r['response_code']:04x} to the HSA size query", where="SDIAS size query")
        if r["event_status"] != 0:
            raise SclpError(f"SDIAS event status 0x{r['event_status']:02x} to the HSA size query", where="SDIAS size query")
        return r["blk_cnt"]

    def hsa_size(self) -> int:
        """HSA bytes as the dump kernel derives them: (blk_cnt - 1) * 4096, 0 when not available."""
        blk = self.blk_count()
        return (blk - 1) * PAGE_SIZE if blk else 0

    def copy(self, dest: int, start_blk: int, nr_blks: int = 1) -> int:
        """Copy `nr_blks` HSA blocks from block `start_blk` (1-based) to absolute
        `dest` (`sclp_sdias_copy`).  ALL_STORED and PART_STORED count as success
        (§6.4); returns the number of blocks stored."""
        sccb = build_sccb(event_qual=SDIAS_EQ_STORE_DATA, blk_cnt=nr_blks, asa=dest, fbn=start_blk)
        self.service_call(SCLP_CMDW_WRITE_EVENT_DATA, sccb)
        # The three output fields, read in place (called once per HSA block: no dict per call).
        response = int.from_bytes(sccb[OFF_RESPONSE : OFF_RESPONSE + 2], "big")
        status = sccb[OFF_EVENT_STATUS]
        if response == SCLP_RC_NORMAL_COMPLETION and (status == SDIAS_EVSTATE_ALL_STORED or status == SDIAS_EVSTATE_PART_STORED):
            return int.from_bytes(sccb[OFF_BLK_CNT : OFF_BLK_CNT + 4], "big")
        where = f"SDIAS block {start_blk}"
        if response != SCLP_RC_NORMAL_COMPLETION:
            raise SclpError(f"SCLP response 0x{response:04x} while copying the HSA", where=where)
        if status == SDIAS_EVSTATE_NO_DATA:
            raise SclpError(f"SDIAS: no data for {nr_blks} block(s) (event status 0x03)", where=where)
        raise SclpError(f"SDIAS event status 0x{status:02x} while copying the HSA", where=where)

    def release(self) -> None:
        """Release the HSA (DIAG 308 subcode 2, §6.7)."""
        self.machine.release_hsa()
