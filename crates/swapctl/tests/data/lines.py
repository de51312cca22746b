"""Writes about MIB MiB of pseudo-random text lines (base64, 8 to 120 characters) to PATH,
the same bytes every time, for `swapctl run`'s sort test.

    python3 lines.py PATH MIB
"""

import base64
import random
import sys


def main() -> None:
    path, mib = sys.argv[1], int(sys.argv[2])
    rng = random.Random(25)
    text = base64.b64encode(rng.randbytes((mib << 20) * 3 // 4))
    lengths = rng.randbytes(len(text) // 8)
    out = []
    at = 0
    for b in lengths:
        n = 8 + b % 113
        if at + n > len(text):
            break
        out.append(text[at : at + n])
        at += n
    with open(path, "wb") as f:
        f.write(b"\n".join(out) + b"\n")


if __name__ == "__main__":
    main()
