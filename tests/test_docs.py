"""Every code sample in the docs is checked: Python blocks run, shell blocks run or are parsed.

* ```python blocks run, in order, in one namespace per file, in a scratch directory holding a
  copy of ``examples/`` and ``docs/`` (so relative paths in the docs resolve and nothing is written to the
  checkout). They use the bundled model, offline.
* Shell blocks: cheap ``fgr-retriever`` commands (``index``, ``search``, ``highlight``, ``demo``)
  run for real in the same scratch directory; the long ones (``label`` needs an LLM, ``train``
  and ``eval`` take minutes to hours) are parsed by the real CLI parser, so a renamed or removed
  option fails here. Scripts (``benchmarks/*.py``, ``examples/*.py``, ``scripts/*.sh``) must exist
  and accept every ``--option`` the docs pass. ``pip install`` lines must name packages or local
  folders that exist. Any other command fails the test until this file learns to check it.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = sorted([ROOT / "README.md", ROOT / "MODEL_CARD.md", *(ROOT / "docs").glob("*.md"),
               *(ROOT / "integrations").glob("*/README.md")])
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
RUN_FOR_REAL = {"index", "search", "highlight", "demo", "optimize"}
SHELL = {"bash", "sh", "shell", "console"}


def code_blocks(path: Path) -> list[tuple[str, str, int]]:
    text = path.read_text(encoding="utf-8")
    return [(m.group(1).lower(), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def shell_commands(block: str) -> list[list[str]]:
    """Logical command lines (continuations joined, comments dropped, ``&&`` chains split)."""
    commands: list[list[str]] = []
    for line in block.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words:
            if "&&" in words:
                cut = words.index("&&")
                commands.append(words[:cut])
                words = words[cut + 1:]
            else:
                commands.append(words)
                words = []
    return [c for c in commands if c]


def check_script(argv: list[str]) -> None:
    script = next((a for a in argv if a.endswith((".py", ".sh"))), None)
    assert script is not None, f"no script in {argv}"
    path = ROOT / script
    assert path.is_file(), f"{script} does not exist"
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".py":  # options may be declared in a helper module beside the script
        source += "".join(p.read_text(encoding="utf-8") for p in path.parent.glob("*.py"))
    for arg in argv:
        if arg.startswith("--"):
            option = arg.split("=", 1)[0]
            assert f'"{option}"' in source, f"{script} has no option {option}"


def check_pip(argv: list[str]) -> None:
    for arg in argv[argv.index("install") + 1:]:
        if arg.startswith("-"):
            continue
        name = arg.split("[", 1)[0]
        if "/" in name or name == ".":
            assert (ROOT / name).exists(), f"pip install names a missing folder {name}"


def check_pytest(argv: list[str]) -> None:
    """The markers a documented pytest command selects on are registered in pyproject.toml."""
    config = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    if "-m" in argv[3:]:
        expression = argv[3:][argv[3:].index("-m") + 1]
        for word in re.findall(r"\w+", expression):
            if word not in ("not", "and", "or"):
                assert f'"{word}:' in config, f"pytest marker {word!r} is not registered"
    for arg in argv[3:]:
        if "/" in arg and not arg.startswith("-"):
            assert (ROOT / arg.split("::")[0]).exists(), f"pytest path {arg} does not exist"


def run_cli(argv: list[str]) -> None:
    from fgr_retriever.cli import build_parser, main

    args = argv[1:]
    # a search of a running server (http://…) needs that server: it is only parsed here
    if args and args[0] in RUN_FOR_REAL and not any(a.startswith(("http://", "https://")) for a in args):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(args)
        assert code == 0, f"fgr-retriever {' '.join(args)} exited {code}: {err.getvalue()}"
    else:
        with contextlib.redirect_stderr(io.StringIO()) as err:
            try:
                build_parser().parse_args(args)
            except SystemExit as exc:
                raise AssertionError(f"the CLI rejects `{' '.join(argv)}`: {err.getvalue()}") from exc


def check_shell(block: str) -> None:
    for argv in shell_commands(block):
        prog = os.path.basename(argv[0])
        if prog == "fgr-retriever":
            run_cli(argv)
        elif prog in ("python", "python3", "bash") and any(a.endswith((".py", ".sh")) for a in argv):
            check_script(argv)
        elif prog in ("pip", "pip3") or argv[1:3] == ["-m", "pip"]:
            check_pip(argv)
        elif argv[1:3] == ["-m", "pytest"]:
            check_pytest(argv)
        else:
            raise AssertionError(f"don't know how to check `{' '.join(argv)}`; teach tests/test_docs.py")


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    for folder in ("examples", "docs"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", ".*"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.integration
@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(ROOT)) for p in DOCS])
def test_doc_code_samples(doc: Path, scratch: Path, monkeypatch) -> None:
    # a real module, so classes defined in a sample (pydantic models...) can resolve their names
    module = types.ModuleType("doc_sample_" + re.sub(r"\W", "_", doc.stem))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    blocks = code_blocks(doc)
    for lang, code, line in blocks:
        where = f"{doc.relative_to(ROOT)}:{line}"
        if lang == "python":
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as exc:  # the sample's own failure, with where it is
                raise AssertionError(f"the Python sample at {where} fails: {exc!r}") from exc
        elif lang in SHELL:
            try:
                check_shell(code)
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from None
        else:
            assert lang in ("", "text", "json", "yaml", "jsonl"), f"{where}: unknown code block language {lang!r}"


def test_docs_are_found() -> None:
    names = {p.name for p in DOCS}
    for required in ("getting-started.md", "concepts.md", "langchain.md", "haystack.md", "trimmed-prompts.md",
                     "training.md", "benchmarks.md", "api.md", "architecture.md"):
        assert required in names, f"docs/{required} is missing"


def test_shell_parser_splits_chains() -> None:
    assert shell_commands("bash scripts/setup.sh && .venv/bin/fgr-retriever demo  # run it\n") == [
        ["bash", "scripts/setup.sh"], [".venv/bin/fgr-retriever", "demo"]]
    assert shell_commands("fgr-retriever search idx \\\n  'a b' -k 3") == [["fgr-retriever", "search", "idx", "a b", "-k", "3"]]
