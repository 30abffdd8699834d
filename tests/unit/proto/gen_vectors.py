#!/usr/bin/env python3
"""Known-answer frames for tests/unit/proto/test_msg_vectors.c.

A second implementation of docs/protocol.md, written from the document and
not from proto/: it encodes the same sample messages as msg_samples.h and
prints one C string of hex per message. The C test holds the printed hex and
checks that proto/ encodes exactly these bytes and decodes them back, so the
C code, the document and this script have to agree. Run it to regenerate
after a deliberate change of the wire format (which also needs a new
protocol version). With --corpus DIR it writes the fuzz seed corpus
(tests/fuzz/corpus/frame) instead; with --check FILE it checks that FILE
holds exactly these vectors (a unit test runs that).
"""
import struct

MAGIC = b"CSYN"
VERSION = 1


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def frame(msg_type, payload):
    head = MAGIC + struct.pack("<HHII", VERSION, msg_type, 0, len(payload))
    crc = crc32c(payload, crc32c(head))
    return head + struct.pack("<I", crc) + payload


def str16(s):
    b = s if isinstance(s, bytes) else s.encode()
    return struct.pack("<H", len(b)) + b


def str32(s):
    b = s.encode()
    return struct.pack("<I", len(b)) + b


SHA = bytes(range(0xA0, 0xA0 + 32))

SAMPLES = [
    ("HELLO", 0x0101,
     struct.pack("<QHHB", 7, 1, 1, 2) + str16("c1") + str16("node-b") + str16(b"\x70\x71")
     + str16("/bin/app") + struct.pack("<H", 2) + str16(b"\xde\xad\xbe\xef")
     + str16(b"\x01\x02\x03")),
    ("HEARTBEAT", 0x0201, struct.pack("<QQQQIB", 7, 42, 0x0102030405060708, 1000, 1500, 1)),
    ("LEASE_RENEW", 0x0202, struct.pack("<QQI", 7, 3, 2000)),
    ("LEASE_GRANT", 0x0203, struct.pack("<QQIB", 7, 3, 2000, 1)),
    ("VOTE_REQUEST", 0x0204, struct.pack("<QQ", 8, 42) + str16("node-b")),
    ("VOTE", 0x0205, struct.pack("<QQIBB", 8, 41, 250, 0, 3)),
    ("PREVOTE_REQUEST", 0x0206, struct.pack("<QQ", 9, 44) + str16("node-c")),
    ("PREVOTE", 0x0207, struct.pack("<QQIBB", 8, 44, 0, 1, 0)),
    ("TRANSFER", 0x0208, struct.pack("<Q", 8) + str16("node-c")),
    ("CKPT_BEGIN", 0x0301, struct.pack("<QQQQB", 7, 43, 42, 8192, 1)),
    ("CKPT_PAGES", 0x0302, struct.pack("<QQI", 43, 4096, 5) + bytes([0x11, 0x22, 0x33, 0x44, 0x55])),
    ("CKPT_END", 0x0303, struct.pack("<QQ", 43, 8192) + SHA),
    ("CKPT_ABORT", 0x0304, struct.pack("<QI", 43, 8) + str16("disk full")),
    ("ACK", 0x0305, struct.pack("<QB", 43, 1)),
    ("CONTROL_REQUEST", 0x0401, struct.pack("<I", 9) + str16("status") + str32("{}")),
    ("CONTROL_RESPONSE", 0x0402, struct.pack("<Ii", 9, -2) + str32('{"ok":1}')),
    ("ERROR", 0x7F01, struct.pack("<I", 5) + str16("term 6 < 7")),
]


def write_corpus(directory):
    """The fuzz seed corpus: each frame alone, and all of them as one stream."""
    import os
    os.makedirs(directory, exist_ok=True)
    frames = [frame(t, p) for _, t, p in SAMPLES]
    for (name, _, _), data in zip(SAMPLES, frames):
        with open(os.path.join(directory, name.lower()), "wb") as out:
            out.write(data)
    with open(os.path.join(directory, "stream"), "wb") as out:
        out.write(b"".join(frames))


def c_table():
    """The vectors as the body of the C table in test_msg_vectors.c."""
    out = []
    for name, msg_type, payload in SAMPLES:
        hexed = frame(msg_type, payload).hex()
        out.append(f"\t{{CS_MSG_{name},")
        out += [f'\t "{hexed[i:i + 64]}"' for i in range(0, len(hexed), 64)]
        out.append("\t},")
    return "\n".join(out) + "\n"


def main():
    import sys
    if len(sys.argv) == 3 and sys.argv[1] == "--corpus":
        write_corpus(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "--check":
        # The C test must hold exactly what this encoder produces.
        with open(sys.argv[2]) as src:
            text = src.read()
        if c_table() not in text:
            print(f"{sys.argv[2]}: vectors differ from gen_vectors.py output")
            sys.exit(1)
        print(f"{sys.argv[2]}: vectors match")
    else:
        sys.stdout.write(c_table())


if __name__ == "__main__":
    main()
