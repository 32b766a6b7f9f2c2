"""SCLP SDIAS SCCB ("Store Data In Absolute Storage" request), s390-dump-format.md §6.2.

`struct sdias_sccb` (68 bytes, big-endian, packed): the SCCB header followed by
the SDIAS event buffer.  Reserved fields are pads.  The `OFF_*` offsets of the
fields the machine answers in place are derived from the declaration.  No I/O here.
"""

from __future__ import annotations

from construct import Int8ub, Int16ub, Int32ub, Int64ub, Padding, Struct

from zipldump.formats.fields import offset_of

SdiasSccb = Struct(
    # struct sccb_header
    "length" / Int16ub,  # 0x00
    "function_code" / Int8ub,  # 0x02
    Padding(3),  # 0x03 control_mask
    "response_code" / Int16ub,  # 0x06
    # struct evbuf_header
    "ev_length" / Int16ub,  # 0x08
    "ev_type" / Int8ub,  # 0x0A
    "ev_flags" / Int8ub,  # 0x0B
    Padding(2),  # 0x0C reserved
    # struct sdias_evbuf
    "event_qual" / Int8ub,  # 0x0E
    "data_id" / Int8ub,  # 0x0F
    Padding(8),  # 0x10 reserved2
    "event_id" / Int32ub,  # 0x18
    Padding(2),  # 0x1C reserved3
    "asa_size" / Int8ub,  # 0x1E
    "event_status" / Int8ub,  # 0x1F
    Padding(4),  # 0x20 reserved4
    "blk_cnt" / Int32ub,  # 0x24
    "asa" / Int64ub,  # 0x28
    Padding(4),  # 0x30 reserved5
    "fbn" / Int32ub,  # 0x34
    Padding(4),  # 0x38 reserved6
    "lbn" / Int32ub,  # 0x3C
    Padding(2),  # 0x40 reserved7
    "dbs" / Int16ub,  # 0x42
)
SCCB_LEN = SdiasSccb.sizeof()
assert SCCB_LEN == 68
EVBUF_LEN = SCCB_LEN - offset_of(SdiasSccb, "ev_length")  # the event buffer follows the 8-byte header
assert EVBUF_LEN == 60

# Fields in declaration order (what `SdiasSccb.parse` yields, pads left out).
SCCB_FIELDS: tuple[str, ...] = tuple(sc.name for sc in SdiasSccb.subcons if sc.name)

# Offsets of the output fields the machine writes in place.
OFF_RESPONSE = offset_of(SdiasSccb, "response_code")
OFF_EV_FLAGS = offset_of(SdiasSccb, "ev_flags")
OFF_EVENT_STATUS = offset_of(SdiasSccb, "event_status")
OFF_BLK_CNT = offset_of(SdiasSccb, "blk_cnt")
assert (OFF_RESPONSE, OFF_EV_FLAGS, OFF_EVENT_STATUS, OFF_BLK_CNT) == (0x06, 0x0B, 0x1F, 0x24)
