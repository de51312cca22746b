"""Builds a structure of about MIB MiB and hashes it, for `swapctl run`'s tests and bench:
a list of 1 KiB byte strings (malloc's heap and arenas), every seventh also in a dict, then
a SHA-256 over all of it in order and over the dict in key order. Prints the count and the
digest: the same on every run, bare or paged.

    python3 hashbuild.py MIB
"""

import hashlib
import sys


def main() -> None:
    mib = int(sys.argv[1])
    chunks = []
    for i in range(mib * 1024):
        seed = hashlib.sha256(i.to_bytes(8, "little")).digest()
        chunks.append(seed * 32)
    index = {i: chunks[i] for i in range(0, len(chunks), 7)}
    h = hashlib.sha256()
    for c in chunks:
        h.update(c)
    for k in sorted(index, reverse=True):
        h.update(index[k][:16])
    print(len(chunks), h.hexdigest())


if __name__ == "__main__":
    main()
