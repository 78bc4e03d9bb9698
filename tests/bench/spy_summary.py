"""Where the daemon's CPU went, from ``bench_e2e.py --py-spy FILE`` (py-spy's raw format, threads).

    .venv/bin/python tests/bench/spy_summary.py FILE [--sms N] [--top 20]

Prints the samples per thread; per area (each sample charged to its innermost frame in
simgw's own code, ``gateway/`` or ``drivers/``, by module; samples with none, by the library
they are in); and the functions that are on the stack most often (inclusive). With ``--sms``
(the SMS sent in the sampled window) each line also says how many samples that is per SMS.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys

FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:()]+)(?::\d+)?\)$")
OWN = ("gateway/", "drivers/")


def parse(path: str) -> list[tuple[str, list[tuple[str, str]], int]]:
    """(thread, frames outermost first as (function, file), samples) per line."""
    out = []
    with open(path) as fh:
        for line in fh:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            thread, *frames = stack.split(";")
            parsed = []
            for frame in frames:
                match = FRAME.match(frame)
                parsed.append((match["func"], match["file"]) if match else (frame, "?"))
            out.append((thread.split(":", 1)[-1].strip() if thread.startswith("thread") else thread, parsed, int(count)))
    return out


def area(frames: list[tuple[str, str]]) -> str:
    for func, file in reversed(frames):
        if file.startswith(OWN):
            return file.removesuffix(".py")
    if not frames:
        return "(no frame)"
    file = frames[-1][1]
    return "lib: " + (file.split("/")[0] if "/" in file else file)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--sms", type=int, default=None, help="SMS sent while sampling: adds per-SMS columns")
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    samples = parse(args.file)
    total = sum(n for _, _, n in samples) or 1
    threads: collections.Counter[str] = collections.Counter()
    areas: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for thread, frames, n in samples:
        threads[thread.split("(")[0].strip() or thread] += n
        areas[area(frames)] += n
        for key in {f"{func} ({file})" for func, file in frames}:
            inclusive[key] += n

    def show(title: str, counter: collections.Counter[str], top: int) -> None:
        print(f"\n{title}")
        for key, n in counter.most_common(top):
            per = f"  {n / args.sms:6.2f}/SMS" if args.sms else ""
            print(f"  {100 * n / total:5.1f} %  {n:6d}{per}  {key}")

    print(f"{total} samples from {args.file}")
    show("by thread", threads, 10)
    show("by area (innermost simgw frame, else library)", areas, args.top)
    show("on the stack (inclusive)", inclusive, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
