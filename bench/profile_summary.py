"""Where a py-spy profile's time goes: by package and by function, from collapsed stacks.

    python -m bench.profile_summary /tmp/prof/burst.txt [--top 15]

Reads what ``python -m bench.operator_scale --py-spy DIR`` records (py-spy ``--format
raw``: one line per distinct stack, frames joined by ``;``, then the sample count) and
prints the share of samples per package (the innermost frame decides it: where the
CPU was spent) and per package on the stack at all (what it was spent for; the event
loop and thread runners are on every stack), and the functions with the most samples
of their own.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

#: Packages told apart, matched against a frame's file path (first match wins): the
#: operator's own code, its frameworks and clients, and the standard library's parts.
PACKAGES = (
    ("kubetune", "/kubetune/controller/"),
    ("kubetune", "/kubetune_contract/api/"),
    ("kubetune", "/kubetune/render/"),
    ("kubetune", "/kubetune/metrics.py"),
    ("kopf", "/kopf/"),
    ("aiohttp", "/aiohttp/"),
    ("kubernetes client", "/kubernetes/"),
    ("urllib3", "/urllib3/"),
    ("pydantic", "/pydantic"),
    ("prometheus_client", "/prometheus_client/"),
    ("json", "/json/"),
    ("copy", "/copy.py"),
    ("ssl", "/ssl.py"),
    ("asyncio", "/asyncio/"),
    ("logging", "/logging/"),
)
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^:()]+)(?::\d+)?\)$")


def package(frame: str) -> str:
    match = _FRAME.match(frame)
    path = "/" + (match.group("file") if match else frame)  # py-spy: relative to sys.path
    return next((name for name, part in PACKAGES if part in path), "other")


def function(frame: str) -> str:
    match = _FRAME.match(frame)
    if not match:
        return frame
    return f"{match.group('function')} ({Path(match.group('file')).name})"


def summarize(lines: list[str]) -> tuple[int, Counter[str], Counter[str], Counter[str]]:
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in lines:
        stack, _, count_text = line.rstrip().rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack.split(";") if f and not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[package(frames[-1])] += count
        functions[function(frames[-1])] += count
        for name in {package(frame) for frame in frames}:
            inclusive[name] += count
    return total, own, inclusive, functions


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args()
    lines = args.profile.read_text(errors="replace").splitlines()
    total, own, inclusive, functions = summarize(lines)
    if not total:
        print(f"{args.profile}: no samples")
        return 1
    print(f"{args.profile}: {total} samples holding the GIL")
    print("package (innermost frame)      own %   on stack %")
    for name, count in own.most_common():
        print(f"  {name:28s} {100 * count / total:5.1f}   {100 * inclusive[name] / total:5.1f}")
    print(f"top {args.top} functions by own samples:")
    for name, count in functions.most_common(args.top):
        print(f"  {100 * count / total:5.1f}%  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
