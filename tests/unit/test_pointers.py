"""Every file the code and the docs cite is one the repository ships: a pointer to a moved or
never-shipped file sends the next engineer nowhere."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A cited file: a path or a bare name of source, docs or configuration, not part of a URL
# or of a longer dotted name. (JSON files are mostly results written at run time, and
# `.json` is as often a method: `answer.json()`.)
_CITED = re.compile(r"(?<![\w/.:-])((?:[\w-]+/)*[\w-]+\.(?:py|md|toml|yaml))(?![\w/-])")


def shipped() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"],
                            cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode == 0:
        return listed.stdout.split()
    return [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file() and ".git" not in p.parts]


def test_every_cited_file_is_shipped() -> None:
    files = shipped()
    known = set(files)
    dirs = {str(Path(f).parent) for f in files}
    names = {Path(f).name for f in files}
    missing = []
    for name in files:
        if not name.endswith((".py", ".md")) or name.startswith("tests/fixtures/"):
            continue
        text = (ROOT / name).read_text(errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            for cited in _CITED.findall(line):
                if "/" not in cited:
                    found = cited in names
                else:
                    found = any(candidate in known or candidate in dirs for candidate in (
                        cited, str(Path(name).parent / cited), f"orderflow/{cited}"))
                if not found:
                    missing.append(f"{name}:{number}: {cited}")
    assert missing == [], "cited but not shipped:\n" + "\n".join(missing)
