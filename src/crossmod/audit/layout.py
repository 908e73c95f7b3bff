"""Record layouts of everything the auditor reads: x86 boot header, compression magics,
`struct jump_entry`, `struct static_call_site`, the kallsyms tables and ELF64 records.

Owns: byte layouts and flag values only (STYLE rule 23); decoding logic lives in the other
modules. Imports: stdlib only.

Kernel sources mirrored (checked against torvalds/linux):
  arch/x86/include/asm/jump_label.h, include/linux/jump_label.h  (relative jump entries)
  include/linux/static_call_types.h                              (static_call_site flags)
  Documentation/arch/x86/boot.rst                                (setup header, protocol 2.08+)
  scripts/kallsyms.c                                             (kallsyms_* tables)
"""

from __future__ import annotations

import struct

# struct jump_entry { s32 code; s32 target; long key; } with CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE:
# each field is relative to its own address; the key's two low bits carry flags.
JUMP_ENTRY = struct.Struct("<iiq")
JUMP_ENTRY_KEY_OFFSET = 8
JUMP_ENTRY_TARGET_OFFSET = 4
JUMP_FLAG_BRANCH = 1  # jump_entry_is_branch(): the site's default direction is "jump"
# Bit 1 is jump_entry_is_init() only after jump_label_init() has rewritten it at boot. In the
# image it is the CONFIG_HAVE_JUMP_LABEL_HACK mark: arch_static_branch() emits `jmp` with
# "i" (2 | branch) and objtool turns every such site into a NOP of the same size.
JUMP_FLAG_OBJTOOL_NOP = 2
JUMP_FLAGS = 3

# struct static_call_site { s32 addr; s32 key; }, both relative; key low bits are flags.
STATIC_CALL_SITE = struct.Struct("<ii")
STATIC_CALL_KEY_OFFSET = 4
STATIC_CALL_SITE_TAIL = 1
STATIC_CALL_SITE_INIT = 2
STATIC_CALL_SITE_FLAGS = 3

# x86 boot protocol: the setup header sits at 0x1f1 in the bzImage file.
BOOT_SETUP_SECTS = 0x1F1
BOOT_HEADER_MAGIC_OFFSET = 0x202
BOOT_HEADER_MAGIC = b"HdrS"
BOOT_VERSION = 0x206  # u16 protocol version
BOOT_KERNEL_VERSION = 0x20E  # u16 pointer to the version string, minus 0x200
BOOT_PAYLOAD = 0x248  # u32 payload_offset, u32 payload_length (protocol >= 2.08)
BOOT_MIN_PAYLOAD_PROTOCOL = 0x208
BOOT_PAYLOAD_FIELDS = struct.Struct("<II")

# Payload magics, from lib/decompress.c's compressed_formats[] table.
COMPRESSION_MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"BZh", "bzip2"),
    (b"\x02\x21\x4c\x18", "lz4"),  # lz4 legacy frame (`lz4 -l`), not the lz4 frame format
    (b"\x28\xb5\x2f\xfd", "zstd"),
)
LZ4_LEGACY_MAGIC = 0x184C2102
LZ4_LEGACY_BLOCK = 8 << 20  # every legacy block decompresses to at most 8 MiB

ELF_MAGIC = b"\x7fELF"
ELF64_SYM = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
ELF64_RELA = struct.Struct("<QQq")  # r_offset, r_info, r_addend

# kallsyms (scripts/kallsyms.c write_src): every table label is `.balign 8` on 64-bit.
KALLSYMS_ALIGN = 8
KALLSYMS_TOKENS = 256
KALLSYMS_MARKER_STRIDE = 256  # kallsyms_markers[i] is the offset of name 256*i
# Tokens are kept in byte order, and a byte that occurs in some name stands for itself, so the
# digits always appear as this run; it is how the token table is found in a stripped image.
KALLSYMS_DIGIT_RUN = b"".join(bytes([c]) + b"\0" for c in b"0123456789")
