#!/usr/bin/env python3
"""The image writer and record encoders run in the agent's copy-on-write
child of a multi-threaded process (where malloc may hold a lock forever)
and in signal handlers. This checks the symbols their objects call: only
memcpy/memset, the CRC, each other, and what sanitizers and the stack
protector add. Any malloc, stdio, errno or other libc call fails the test.

usage: check_writer_symbols.py NM LIBRARY
"""
import subprocess
import sys

ALLOWED = {'memcpy', 'memset', 'memmove', 'cs_crc32c', 'cs_crc32c_combine', '__stack_chk_fail',
           '_GLOBAL_OFFSET_TABLE_'}
ALLOWED_PREFIXES = ('__asan_', '__ubsan_', '__sanitizer_', 'cs_img_', 'cs_image_')


def main():
    nm, lib = sys.argv[1], sys.argv[2]
    out = subprocess.run([nm, '--undefined-only', '--format=posix', lib],
                         check=True, capture_output=True, text=True).stdout
    undefined = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1] in ('U', 'w') and not parts[0].endswith(':'):
            undefined.add(parts[0].split('@')[0])
    if 'cs_crc32c' not in undefined:
        print('nm output not understood (no reference to cs_crc32c):\n' + out)
        return 1
    bad = sorted(s for s in undefined
                 if s not in ALLOWED and not s.startswith(ALLOWED_PREFIXES))
    if bad:
        print('the image writer calls functions that are not async-signal-safe '
              'or may allocate: ' + ', '.join(bad))
        return 1
    print('image writer symbols: ' + ', '.join(sorted(undefined)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
