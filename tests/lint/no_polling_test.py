#!/usr/bin/env python3
"""No service or library code waits by sleeping: every wait in services/ and common/ is on a
condition variable, a cancellation token, a pidfd or inotify, or the device runtime (issue 16).
Fails naming each file and line that sleeps, or that bounds a wait by a short clock to look
at something again (`std::min(deadline, absl::Now() + ...)`)."""
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PATTERNS = [
    (re.compile(r"\bsleep_for\s*\("), "std::this_thread::sleep_for"),
    (re.compile(r"\bSleepFor\s*\("), "absl::SleepFor"),
    (re.compile(r"\b(usleep|nanosleep|sleep)\s*\("), "a libc sleep"),
    (re.compile(r"min\s*\(\s*deadline\s*,\s*absl::Now\(\)\s*\+"), "a wait re-armed by a clock"),
]


def offences(root):
    found = []
    for top in ("services", "common"):
        for dirpath, _, files in os.walk(os.path.join(root, top)):
            for name in sorted(files):
                if not name.endswith((".cc", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        code = line.split("//", 1)[0]
                        for pattern, what in PATTERNS:
                            if pattern.search(code):
                                found.append(f"{os.path.relpath(path, root)}:{number}: {what}: "
                                             f"{line.strip()}")
    return found


def main():
    # The checker itself must see a sleep when there is one.
    probe = [p for p, _ in PATTERNS if p.search("std::this_thread::sleep_for(ms);")]
    assert probe, "the sleep pattern matches nothing"
    found = offences(ROOT)
    for line in found:
        print(line)
    if found:
        print(f"no_polling_test: {len(found)} waits by sleeping in services/ or common/")
        return 1
    print("no_polling_test: no sleeps in services/ or common/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
