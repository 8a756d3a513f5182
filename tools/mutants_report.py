#!/usr/bin/env python3
"""Verdict of a `make mutants` run (README "Mutation testing").

cargo-mutants exits non-zero whenever one mutant survives, which would make
the target fail for survivors the README already explains. So the target
passes when, and only when:

- at least 95 % of the viable mutants are caught (a mutant that makes the
  tests hang past cargo-mutants' timeout counts as caught: the tests did not
  pass); unviable mutants (they do not compile) are not counted;
- every surviving mutant is listed, in backticks, in the README's "Mutation
  testing" section, as `<file>: <mutation>` (the line and column left out,
  so an edit above a survivor does not make it new).

Usage: mutants_report.py MUTANTS_OUT_DIR README
"""

import re
import sys
from pathlib import Path

THRESHOLD = 0.95


def lines(out: Path, name: str) -> list[str]:
    path = out / name
    if not path.exists():
        return []
    return [l for l in path.read_text().splitlines() if l.strip()]


def key(mutant: str) -> str:
    # "shared/core/src/rules.rs:12:5: replace x with y in f" -> "shared/core/src/rules.rs: replace x with y in f"
    return re.sub(r"^([^:]+):\d+:\d+: ", r"\1: ", mutant.strip())


def listed_in_readme(readme: Path) -> set[str]:
    text = readme.read_text()
    start = text.find("## Mutation testing")
    if start < 0:
        sys.exit(f"{readme}: no '## Mutation testing' section")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end > 0 else len(text)]
    return {key(m) for m in re.findall(r"`([^`\n]+\.rs: [^`\n]+)`", section)}


def main() -> int:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, readme = Path(sys.argv[1]), Path(sys.argv[2])
    caught = lines(out, "caught.txt")
    missed = lines(out, "missed.txt")
    timeout = lines(out, "timeout.txt")
    unviable = lines(out, "unviable.txt")
    viable = len(caught) + len(missed) + len(timeout)
    if viable == 0:
        print(f"{out}: no viable mutant was tested", file=sys.stderr)
        return 1
    score = (len(caught) + len(timeout)) / viable
    print(
        f"mutants: {len(caught)} caught, {len(missed)} missed, "
        f"{len(timeout)} timeouts, {len(unviable)} unviable; "
        f"{score:.1%} of {viable} viable mutants caught (at least {THRESHOLD:.0%} required)"
    )
    known = listed_in_readme(readme)
    unexplained = [m for m in missed if key(m) not in known]
    for m in missed:
        print(f"  survivor{'' if key(m) in known else ' NOT IN README'}: {m}")
    ok = True
    if score < THRESHOLD:
        print(f"FAIL: fewer than {THRESHOLD:.0%} of viable mutants caught", file=sys.stderr)
        ok = False
    if unexplained:
        print(
            f"FAIL: {len(unexplained)} survivor(s) not explained in {readme} "
            "('Mutation testing'): kill them with a test, or list them with why "
            "they are equivalent or harmless",
            file=sys.stderr,
        )
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
