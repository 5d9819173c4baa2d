"""Command line: wordcount FILE [FILE ...]."""

import argparse
from pathlib import Path


def count(text: str) -> dict[str, int]:
    """Lines, words and characters of ``text``."""
    return {"lines": text.count("\n"), "words": len(text.split()), "chars": len(text)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="wordcount", description="Count lines, words and characters.")
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for path in args.files:
        counts = count(path.read_text(encoding="utf-8"))
        print(f"{counts['lines']:>7} {counts['words']:>7} {counts['chars']:>7} {path}")
    return 0
