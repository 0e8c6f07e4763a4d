"""Every runnable example in README.md and docs/*.md runs as printed, and prints what it says.

The convention (also in docs/testing.md, "Examples in these docs are tested"):

* A fenced block whose first line is ``# NAME.EXT`` (``# mymod.py``, ``# myapp/worker.py``,
  ``# pytest.ini``) is a **file**: it is written under that name into the directory its
  document's examples run in.  A first line that says ``OTHER.py from docs/DOC.md`` (or
  ``from README.md``) also copies that document's file OTHER.py there.
* A ```` ```python ```` block is a **program** and runs, with ``python FILE`` in that directory,
  when it has no name, or when it is a named file with a top-level ``trio.run(...)`` line (like
  README's ``main.py``).  A named ``test_*.py`` file runs under pytest instead.  Other named
  files are only there to be imported.
* ```` ```python fragment ```` marks a block that is not meant to run (an API shape, an excerpt);
  GitHub shows it like any python block.  An unnamed block that is not a fragment is run, so an
  example that stops running fails here rather than going stale.
* An ```` ```output ```` block is what the program above it prints, stdout and stderr together
  as a terminal shows them.  Trailing spaces don't matter; ``...`` inside a line matches any
  text, and a line that is just ``...`` matches any number of lines.  A program without an
  output block must print nothing.  Every program must exit with status 0.  (A pytest file's
  output is only checked when it has an output block.)

Programs run one at a time with ``PYTHONUNBUFFERED=1`` (output in the order it is written, as
on a terminal) and ``subint_spawn.BytecodeWarning`` ignored, each in a fresh directory and
process group, bounded by ``RUN_BOUND`` (a hang bound: the whole set takes well under a
minute).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: Seconds one example may run: only there to turn a hang into a failure.
RUN_BOUND = 90.0

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^`]*?)\s*$")
_FILE_NAME = re.compile(r"^#\s*(?P<name>[\w.-]+(?:/[\w.-]+)*\.\w+)(?=\s|$)")
_FROM_OTHER = re.compile(r"(?P<name>[\w./-]+\.\w+) from (?P<doc>README\.md|docs/[\w.-]+\.md)")
_TOP_LEVEL_RUN = re.compile(r"^trio\.run\(", re.MULTILINE)
#: How subint_spawn.BytecodeWarning's message starts.
_BYTECODE_WARNING = "trio and subint_spawn have no usable .pyc files"


@dataclass
class Block:
    doc: Path
    line: int
    info: list[str]
    text: str

    @property
    def lang(self) -> str:
        return self.info[0] if self.info else ""

    @property
    def file_name(self) -> str | None:
        if self.lang in ("output", "sh", "shell", "console", "text", ""):
            return None
        first = self.text.split("\n", 1)[0]
        match = _FILE_NAME.match(first)
        return match.group("name") if match else None


@dataclass
class Example:
    """One program to run, with the files its document provides."""

    doc: Path
    line: int
    name: str
    source: str
    files: dict[str, str]
    expected: str | None = None
    pytest: bool = False

    @property
    def id(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"


@dataclass
class Parsed:
    examples: list[Example] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def blocks_of(doc: Path) -> list[Block]:
    blocks: list[Block] = []
    lines = doc.read_text().splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        indent, fence = len(opening["indent"]), opening["fence"]
        fence_line = index + 1  # 1-based, as editors show it
        body: list[str] = []
        index += 1
        while index < len(lines) and not lines[index].strip().startswith(fence):
            line = lines[index]
            body.append(line[indent:] if line[:indent] == " " * indent else line.lstrip())
            index += 1
        blocks.append(Block(doc, fence_line, opening["info"].split(), "\n".join(body) + "\n"))
        index += 1
    return blocks


def _files_of(doc: Path, blocks: list[Block], errors: list[str]) -> dict[str, str]:
    files: dict[str, str] = {}
    for block in blocks:
        name = block.file_name
        if name is None:
            continue
        if name in files:
            errors.append(f"{doc.name}:{block.line}: a second file named {name}")
        files[name] = block.text
    return files


def parse(documents: list[Path] = DOCUMENTS) -> Parsed:
    parsed = Parsed()
    blocks = {doc: blocks_of(doc) for doc in documents}
    own_files = {doc: _files_of(doc, blocks[doc], parsed.errors) for doc in documents}
    for doc in documents:
        files = dict(own_files[doc])
        for block in blocks[doc]:
            if block.file_name is None:
                continue
            for other in _FROM_OTHER.finditer(block.text.split("\n", 1)[0]):
                source = own_files.get(ROOT / other["doc"], {}).get(other["name"])
                if source is None:
                    parsed.errors.append(
                        f"{doc.name}:{block.line}: no file {other['name']} in {other['doc']}"
                    )
                else:
                    files.setdefault(other["name"], source)
        last: Example | None = None
        for block in blocks[doc]:
            if block.lang == "output":
                if last is None or last.expected is not None:
                    parsed.errors.append(
                        f"{doc.name}:{block.line}: an output block with no program above it"
                    )
                else:
                    last.expected = block.text
                continue
            if block.lang != "python" or "fragment" in block.info[1:]:
                continue
            name = block.file_name
            if name is None:
                last = Example(doc, block.line, f"example_line{block.line}.py", block.text, files)
            elif Path(name).name.startswith("test_"):
                last = Example(doc, block.line, name, block.text, files, pytest=True)
            elif _TOP_LEVEL_RUN.search(block.text):
                last = Example(doc, block.line, name, block.text, files)
            else:
                continue  # a module the programs import
            parsed.examples.append(last)
    return parsed


def output_matches(expected: str, actual: str) -> bool:
    """``expected`` against ``actual``, line by line, with ``...`` as described above."""
    if not expected.strip():
        return not actual.strip()
    pattern: list[str] = []
    for line in expected.rstrip("\n").split("\n"):
        if line.strip() == "...":
            pattern.append(r"(?:[^\n]*\n)*?")
        else:
            pattern.append(
                ".*?".join(re.escape(part) for part in line.rstrip().split("...")) + r"\n"
            )
    normalized = (
        "".join(line.rstrip() + "\n" for line in actual.rstrip("\n").split("\n")) if actual else ""
    )
    return re.fullmatch("".join(pattern), normalized) is not None


def run_example(example: Example, directory: Path) -> tuple[int, str]:
    for name, text in example.files.items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    (directory / example.name).parent.mkdir(parents=True, exist_ok=True)
    (directory / example.name).write_text(example.source)
    if example.pytest:
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", example.name]
    else:
        command = [sys.executable, example.name]
    # BytecodeWarning: a checkout edited since `make venv` has stale .pyc files; the examples
    # are about what they print, not about how this checkout was installed.
    # (Filtered by its message: a -W category must be importable before Python starts.)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONWARNINGS": f"ignore:{_BYTECODE_WARNING}"}
    process = subprocess.Popen(
        command,
        cwd=directory,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # a hang is killed with all it started (trio actors too)
    )
    try:
        output, _ = process.communicate(timeout=RUN_BOUND)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"{example.id} still running after {RUN_BOUND} s:\n{output}")
    return process.returncode, output


_PARSED = parse()


def test_the_docs_follow_the_convention() -> None:
    assert _PARSED.errors == []
    assert len(_PARSED.examples) >= 20  # the parser found the examples, not nothing
    assert sum(example.expected is not None for example in _PARSED.examples) >= 15


@pytest.mark.timeout(RUN_BOUND + 30)
@pytest.mark.parametrize(
    "example", _PARSED.examples, ids=[example.id for example in _PARSED.examples]
)
def test_example_runs_as_printed(example: Example, tmp_path: Path) -> None:
    status, output = run_example(example, tmp_path)
    assert status == 0, f"{example.id} exited with {status}:\n{output}"
    expected = example.expected
    if expected is None and not example.pytest:
        expected = ""  # no output block: it prints nothing
    if expected is not None:
        assert output_matches(expected, output), (
            f"{example.id} printed:\n{output}\nbut the doc says:\n{expected}"
        )


@pytest.mark.parametrize(
    ("expected", "actual", "matches"),
    [
        ("3\n49\n", "3\n49\n", True),
        ("3\n49\n", "3\n", False),
        ("", "", True),
        ("", "noise\n", False),
        ("stopped at ...\n", "stopped at 256\n", True),
        ("a\n...\nz\n", "a\nb\nc\nz\n", True),
        ("a\n...\nz\n", "a\nz\n", True),
        ("a\n...\n", "a\n", True),
        ("a  \n", "a\n", True),
        ("a\n", "b\n", False),
    ],
)
def test_output_matching(expected: str, actual: str, matches: bool) -> None:
    assert output_matches(expected, actual) is matches
