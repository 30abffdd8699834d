#!/usr/bin/env python3
"""A second implementation of docs/image-format.md, written from the
document alone, checked against the C implementation's output:

- it encodes the known-answer image of the document's example and compares
  it with the example's bytes and with kat_hex in test_image.c, and one
  record of every other type with record_kat in test_image.c;
- it decodes every image of the fuzz seed corpus (written by the C writer,
  every record type with every field set) field by field, following only
  the layouts of the document, and checks that each section's records use
  exactly its payload, the CRCs, the END totals and the ordering rules.

usage: image_spec_check.py DOC TEST_IMAGE_C CORPUS_DIR
"""
import os
import re
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def section(stype, payload):
    head = struct.pack('<IIQ', stype, 0, len(payload))
    return head + payload + struct.pack('<I', crc32c(head + payload))


def lp(data):
    return struct.pack('<I', len(data)) + data


def known_answer():
    header = (b'CSYNCIMG' + struct.pack('<IIIIII', 3, 1, 4096, 0, 0, 0x340)
              + struct.pack('<QQQQqqq', 1, 0, 1, 7, 0x1122334455667788, 0x10, 0x20)
              + lp(b'6.18.0') + lp(bytes.fromhex('deadbeef')))
    thread = struct.pack('<iIQQQQQQQII', 42, 1, 0x7ffe0000f000, 0x7f0000000100,
                         0, 0, 0, 0, 0, 32, 0x53053053)
    resident = struct.pack('<QII', 0x400000, 2, 0)
    img = (section(1, header) + section(4, struct.pack('<I', 1) + thread)
           + section(7, struct.pack('<I', 1) + resident))
    return img + section(15, struct.pack('<IQ', 3, len(img)))


def record_vectors():
    """One record of each other type, values as in test_image.c's record_kat."""
    proc = struct.pack('<iiII', 1, 2, 3, 4) + struct.pack('<11Q', *range(5, 16))
    proc += b''.join(struct.pack('<QQ', 16 + 2 * k, 17 + 2 * k) for k in range(16))
    proc += (struct.pack('<3QI', 48, 49, 50, 51) + lp(bytes([0xa1, 0xa2])) + lp(b'c')
             + lp(b'/w') + lp(b'/x'))
    mapping = (struct.pack('<QQIIQQQQq', 0x1000, 0x3000, 5, 0x1009, 0x2000, 6, 7, 8, -9)
               + lp(bytes([0xb1, 0xb2, 0xb3])) + lp(b'/lib') + struct.pack('<I', 0x25))
    fd = struct.pack('<iIIIQiiiiIIQQiIQQ', 7, 10, 2, 1, 3, -4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
                     14, 15)
    fd += (lp(b'e') + lp(b'\x0a') + lp(b'') + lp(b'') + struct.pack('<I', 1)
           + struct.pack('<iIQi', 3, 0x19, 0xdd, 5) + lp(b'r'))
    fd += (struct.pack('<IiI', 16, 2, 0o640) + lp(b'') + struct.pack('<I', 1)
           + struct.pack('<ii', 6, 9) + lp(struct.pack('<I', 1))
           + struct.pack('<I', 1) + struct.pack('<IIQQ', 3, 2, 10, 2**64 - 1)
           + struct.pack('<QI', 16, 2)
           + struct.pack('<I', 1) + lp(bytes.fromhex('06000000ffff0000')))
    timer = struct.pack('<IiiIIiQQQ', 4, 1, 2, 4, 34, 5, 6, 7, 8)
    return {
        'process': proc,
        'mapping': mapping,
        'fd': fd,
        'sigaction': struct.pack('<IIQQQQ', 17, 0, 0x401000, 0x04000000, 0x7f00, 0x10000),
        'unsupported': lp(b'fd 9: netlink'),
        'creds': struct.pack('<8I5Q4II2I', 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 1, 2, 0,
                             2, 100, 101),
        'page_run_head': struct.pack('<QII', 0x7f0000001000, 3, 0),
        'timer': timer,
        'attrs': struct.pack('<iIIIIiII', -100, 1, 0, 2, 16, -5, 1, 5) + lp(bytes([0x0f, 0])),
        'seccomp': struct.pack('<iI', 4, 2) + lp(bytes.fromhex('0600000000000000')),
        'sigqueued': struct.pack('<iI', 3, 35) + struct.pack('<iiiiiiQ', 35, 0, -1, 0, 7, 8, 9)
        + bytes(96),
    }


def test_record_vectors(c_source):
    body = c_source[c_source.index('record_kat[] = {'):]
    body = body[:body.index('};')]
    found = {}
    for name, rest in re.findall(r'\{"(\w+)",((?:\s*"[0-9a-f]*")+)\}', body):
        found[name] = bytes.fromhex(''.join(re.findall(r'"([0-9a-f]*)"', rest)))
    return found


def doc_example(doc):
    block = doc[doc.index('```\nHEADER at 0'):]
    block = block[4:block.index('```', 4)]
    return bytes.fromhex(''.join(''.join(line.strip().split('   ')[0].split())
                                 for line in block.splitlines() if line.startswith('  ')))


def test_kat(c_source):
    body = c_source[c_source.index('kat_hex[] ='):]
    body = re.sub(r'/\*.*?\*/', '', body, flags=re.S)
    body = body[:body.index(';')]
    return bytes.fromhex(''.join(re.findall(r'"([0-9a-f]*)"', body)))


class Bad(Exception):
    pass


class Reader:
    def __init__(self, data, where):
        self.d, self.pos, self.where = data, 0, where

    def take(self, n):
        if n > len(self.d) - self.pos:
            raise Bad('%s: %d bytes needed, %d left' % (self.where, n, len(self.d) - self.pos))
        self.pos += n
        return self.d[self.pos - n:self.pos]

    def u(self, fmt):
        return struct.unpack('<' + fmt, self.take(struct.calcsize('<' + fmt)))

    def var(self, limit, text=False):
        (n,) = self.u('I')
        if n > limit:
            raise Bad('%s: length %d above %d' % (self.where, n, limit))
        data = self.take(n)
        if text and 0 in data:
            raise Bad('%s: NUL in a string' % self.where)
        return data

    def done(self):
        if self.pos != len(self.d):
            raise Bad('%s: %d bytes left over' % (self.where, len(self.d) - self.pos))


def run(r, prev_end):
    addr, npages, reserved = r.u('QII')
    if addr % 4096 or npages == 0 or reserved or addr + npages * 4096 > 1 << 47 \
            or addr < prev_end:
        raise Bad('%s: bad run %#x+%d' % (r.where, addr, npages))
    return addr + npages * 4096


def records(r, one):
    (count,) = r.u('I')
    state = None
    for _ in range(count):
        state = one(r, state)
    return count


def header(r):
    magic, version = r.u('8sI')
    if magic != b'CSYNCIMG' or version != 3:
        raise Bad('magic/version')
    arch, page_size, flags, tracking, _ = r.u('IIIII')
    gen, parent, base, _ = r.u('QQQQ')
    r.u('qqq')
    r.var(64, True)
    r.var(32)
    delta = flags & 1
    if arch != 1 or page_size != 4096 or flags & ~1 or tracking > 2 or gen == 0:
        raise Bad('header fields')
    if (not delta and (parent or base != gen)) or \
            (delta and not 1 <= base <= parent < gen):
        raise Bad('generation chain')


def process(r):
    r.u('iiII' + 'Q' * 11 + 'Q' * 32 + 'Q' * 3 + 'I')
    r.var(1024)
    r.var(15, True)
    r.var(4095, True)
    r.var(4095, True)


def mapping(r, prev_end):
    start, end, prot, flags, pgoff = r.u('QQIIQ')
    r.u('QQQq')
    r.var(32)
    r.var(4095, True)
    (madv,) = r.u('I')
    if start >= end or (start | end | pgoff) % 4096 or prot & ~7 or flags & ~0x3fff \
            or (flags & 0x2000 and not flags & 0x2) or (prev_end or 0) > start \
            or madv & ~0xff or madv & 0x18 == 0x18 or madv & 0xc0 == 0xc0:
        raise Bad('mapping %#x-%#x' % (start, end))
    return end


def thread(r, _):
    (flags,) = r.u('iI')[1:]
    r.u('QQQQQQQII')
    if flags & ~3:
        raise Bad('thread flags')


def fd(r, prev):
    num, ftype = r.u('iI')
    r.u('IIQiiiiIIQQiIQQ')
    if num < 0 or (prev is not None and num <= prev[-1]) or not 1 <= ftype <= 19:
        raise Bad('fd %d type %d' % (num, ftype))
    r.var(4095, True)
    r.var(128)
    r.var(128)
    if r.var(1 << 20) and ftype not in (4, 15, 17):
        raise Bad('pipe data on a non-pipe')
    (n,) = r.u('I')
    if n > 65536 or (n and ftype != 10):
        raise Bad('epoll entries')
    for _ in range(n):
        if r.u('iIQi')[3] < 0:
            raise Bad('epoll src_fd')
    r.var(255, True)
    _, share, mode = r.u('IiI')
    if share != -1 and share not in (prev or []):
        raise Bad('fd %d: share_fd %d' % (num, share))
    if mode & ~0o7777:
        raise Bad('fd %d: file_mode' % num)
    data = r.var(8 << 20)
    if data and ftype not in (14, 18, 19):
        raise Bad('file data on a fd that is neither TMPFILE, INOTIFY nor MEMFD')
    if ftype == 18:
        w, last = Reader(data, r.where + ' watches'), 0
        while w.pos < len(w.d):
            wd = w.u('iIQ')[0]
            path = w.var(4095, True)
            if wd <= last or not path:
                raise Bad('fd %d: watch %d' % (num, wd))
            last = wd
    (n,) = r.u('I')
    if n > 32:
        raise Bad('too many socket options')
    for _ in range(n):
        r.u('ii')
        r.var(16)
    (n,) = r.u('I')
    if n > 64:
        raise Bad('too many locks')
    for _ in range(n):
        kind, mode, start, end = r.u('IIQQ')
        if not 1 <= kind <= 4 or mode not in (1, 2) or start > end:
            raise Bad('fd %d: lock' % num)
    _, shut, locked = r.u('QII')
    if shut > 3 or locked > 1 or len(r.var(32768)) % 8:
        raise Bad('fd %d: shutdown or filter' % num)
    return (prev or []) + [num]


def timer(r, prev):
    kind, tid, clock, notify, signo, ntid, sigval, _, _ = r.u('IiiIIiQQQ')
    if not 1 <= kind <= 4 or (kind != 4 and (tid or clock or notify or signo or ntid or sigval)) \
            or tid < 0 or notify not in (0, 1, 4) or signo > 64 \
            or (prev is not None and (kind, tid) <= prev):
        raise Bad('timer kind %d id %d' % (kind, tid))
    return (kind, tid)


def seccomp(r, prev):
    tid, flags = r.u('iI')
    prog = r.var(32768)
    if tid <= 0 or tid < (prev or 1) or flags & ~6 or not prog or len(prog) % 8:
        raise Bad('seccomp filter of %d' % tid)
    return tid


def sigqueued(r, prev):
    tid, signo = r.u('iI')
    info = r.take(128)
    si_signo = struct.unpack_from('<I', info)[0]
    queue = [] if prev is None or prev[0] != tid else prev[1]
    if tid < 0 or (prev is not None and tid < prev[0]) or not 1 <= signo <= 64 \
            or si_signo != signo or (signo < 32 and signo in queue):
        raise Bad('pending signal %d on %d' % (signo, tid))
    return (tid, queue + [signo])


def sigaction(r, prev):
    signo, reserved = r.u('II')
    r.u('QQQQ')
    if not 1 <= signo <= 64 or reserved or signo <= (prev or 0):
        raise Bad('signo %d' % signo)
    return signo


def creds(r):
    r.u('8I5Q')
    _securebits, no_new_privs, dumpable, seccomp, n = r.u('5I')
    if no_new_privs > 1 or dumpable > 2 or seccomp > 2 or n > 1024:
        raise Bad('creds: no_new_privs %d dumpable %d seccomp %d groups %d' %
                  (no_new_privs, dumpable, seccomp, n))
    r.u('%dI' % n)


def decode(data, name):
    """Walks and decodes a whole image; returns the section types seen."""
    off, types, seen, pages_end = 0, [], set(), 0
    while True:
        if len(data) - off < 16:
            raise Bad('%s: truncated at %d' % (name, off))
        stype, flags, plen = struct.unpack_from('<IIQ', data, off)
        end = off + 16 + plen
        if end + 4 > len(data):
            raise Bad('%s: section at %d runs past the end' % (name, off))
        if crc32c(data[off:end]) != struct.unpack_from('<I', data, end)[0]:
            raise Bad('%s: CRC of section at %d' % (name, off))
        if flags & ~1 or (not types and stype != 1):
            raise Bad('%s: flags or first section' % name)
        r = Reader(data[off + 16:end], '%s section %d at %d' % (name, stype, off))
        if stype in (1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14):
            if stype in seen:
                raise Bad('%s: duplicate %d' % (name, stype))
            seen.add(stype)
        if stype == 1:
            header(r)
        elif stype == 2:
            process(r)
        elif stype == 3:
            records(r, mapping)
        elif stype == 4:
            records(r, thread)
        elif stype == 5:
            records(r, fd)
        elif stype == 6:
            if struct.unpack_from('<I', r.d)[0] > 64:
                raise Bad('too many sigactions')
            records(r, sigaction)
        elif stype == 7:
            records(r, lambda rr, prev: run(rr, prev or 0))
        elif stype == 8:
            while r.pos < len(r.d):
                pages_end = run(r, pages_end)
                npages = struct.unpack_from('<I', r.d, r.pos - 8)[0]
                r.take(npages * 4096)
        elif stype == 16:
            count, data_off = r.u('II')
            heads_end = 8 + 16 * count
            if not heads_end <= data_off < heads_end + 4096 or data_off > len(r.d):
                raise Bad('%s: data_off %d' % (r.where, data_off))
            sizes = []
            for _ in range(count):
                pages_end = run(r, pages_end)
                sizes.append(struct.unpack_from('<I', r.d, r.pos - 8)[0] * 4096)
            if any(r.d[r.pos:data_off]):
                raise Bad('%s: padding not zero' % r.where)
            r.pos = data_off
            r.take(sum(sizes))
        elif stype == 9:
            records(r, lambda rr, _: rr.var(255, True) and None)
        elif stype == 10:
            creds(r)
        elif stype == 12:
            oom, sub, thp, dump, mb, nice, pol, prio = r.u('iIIIIiII')
            pol &= ~0x40000000
            r.var(128)
            if not -1000 <= oom <= 1000 or sub > 1 or thp > 1 or dump > 2 or mb & ~0x154 \
                    or not -20 <= nice <= 19 or pol > 5 or pol == 4 or prio > 99:
                raise Bad('attrs')
        elif stype == 11:
            if struct.unpack_from('<I', r.d)[0] > 65536:
                raise Bad('too many timers')
            records(r, timer)
        elif stype == 14:
            if struct.unpack_from('<I', r.d)[0] > 65536:
                raise Bad('too many seccomp filters')
            records(r, seccomp)
        elif stype == 13:
            if struct.unpack_from('<I', r.d)[0] > 65536:
                raise Bad('too many pending signals')
            records(r, sigqueued)
        elif stype == 15:
            count, total = r.u('IQ')
            if plen != 12 or count != len(types) or total != off or end + 4 != len(data):
                raise Bad('%s: END totals' % name)
            return types + [15]
        elif not flags & 1:
            raise Bad('%s: unknown section %d not skippable' % (name, stype))
        else:
            r.pos = len(r.d)
        r.done()
        types.append(stype)
        off = end + 4


def main():
    doc = open(sys.argv[1]).read()
    c_source = open(sys.argv[2]).read()
    corpus = sys.argv[3]
    failures = 0
    kat = known_answer()
    for what, data in (('docs/image-format.md example', doc_example(doc)),
                       ('test_image.c kat_hex', test_kat(c_source))):
        if data != kat:
            print('%s differs from the spec encoder:\n  %s\n  %s' % (what, data.hex(), kat.hex()))
            failures += 1
    want = record_vectors()
    got = test_record_vectors(c_source)
    for name, data in want.items():
        if got.get(name) != data:
            print('%s record vector in test_image.c differs from the spec encoder:\n  %s\n  %s'
                  % (name, (got.get(name) or b'').hex(), data.hex()))
            failures += 1
    if set(got) != set(want):
        print('record vectors: test_image.c has %s' % sorted(got))
        failures += 1
    names = sorted(os.listdir(corpus))
    for name in names:
        with open(os.path.join(corpus, name), 'rb') as f:
            data = f.read()
        try:
            types = decode(data, name)
            print('%s: %d bytes, sections %s' % (name, len(data), types))
        except (Bad, struct.error) as e:
            print('%s: %s' % (name, e))
            failures += 1
    if len(names) < 3:
        print('corpus too small: %s' % names)
        failures += 1
    # the decoder must be able to fail: a flipped bit is found
    try:
        bad = bytearray(kat)
        bad[150] ^= 1
        decode(bytes(bad), 'flipped')
        print('a damaged image was accepted')
        failures += 1
    except Bad:
        pass
    print('%d passed, %d failed' % (len(names) + len(want) + 3 - failures, failures))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
