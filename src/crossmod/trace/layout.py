"""Binary layout of trace-cmd's ``trace.dat`` (file versions 6 and 7) and ring-buffer pages.

Owns: magic bytes, option and section IDs, fixed-size headers, ring-buffer event-header
bit fields. Only layout lives here; `dat.py` gives it meaning (STYLE rule 23). Sources:
trace-cmd.dat.v6(5), trace-cmd.dat.v7(5) and the kernel's ``include/linux/ring_buffer.h``.
The page header's own field offsets are *not* here: they are read from the file's
``header_page`` description.

May import: the standard library only.
"""

from __future__ import annotations

MAGIC = b"\x17\x08\x44tracing"

# v7 option IDs (trace-cmd.dat.v7(5) "OPTIONS SECTION"); v6 uses the same numbering for
# the ones it has.
OPT_DONE = 0
OPT_DATE = 1
OPT_CPUSTAT = 2
OPT_BUFFER = 3
OPT_TRACECLOCK = 4
OPT_UNAME = 5
OPT_OFFSET = 7
OPT_CPUCOUNT = 8
OPT_VERSION = 9
OPT_HEADER_INFO = 16
OPT_FTRACE_EVENTS = 17
OPT_EVENT_FORMATS = 18
OPT_KALLSYMS = 19
OPT_PRINTK = 20
OPT_CMDLINES = 21

# v7 section IDs equal the option ID that points at them; flyrecord data is section 3.
SEC_OPTIONS = 0
SEC_FLYRECORD = 3
SECTION_FLAG_COMPRESSED = 1

# v7 section header: id u16, flags u16, description string id u32, size u64.
SECTION_HEADER = "HHIQ"
# v7 compressed section / chunk header: compressed size u32, uncompressed size u32.
COMPRESS_HEADER = "II"

V6_OPTIONS_TAG = b"options  \0"
V6_FLYRECORD_TAG = b"flyrecord\0"
V6_LATENCY_TAG = b"latency  \0"

# Ring-buffer event header: one u32, type_len in the low 5 bits (little-endian kernels),
# time_delta in the upper 27 bits.
TYPE_LEN_MASK = 0x1F
TIME_DELTA_SHIFT = 5
TS_SHIFT = 27
TYPE_PADDING = 29
TYPE_TIME_EXTEND = 30
TYPE_TIME_STAMP = 31
# Absolute time stamps lack the top 5 bits; they are taken from the running time stamp.
TS_MSB = 0xF8 << 56
# The page header's commit word: size in the low 27 bits, flags above.
COMMIT_MASK = (1 << 27) - 1
MISSING_EVENTS = 1 << 31
MISSING_STORED = 1 << 30
