import unittest
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from tempfile import TemporaryDirectory

from wordcount.cli import count, main


def run(argv: list[str]) -> str:
    out = StringIO()
    with redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


class CountTest(unittest.TestCase):
    def test_count(self) -> None:
        self.assertEqual(count("one two\nthree\n"), {"lines": 2, "words": 3, "chars": 14})

    def test_main_prints_a_table(self) -> None:
        with TemporaryDirectory() as tmp:
            path = Path(tmp) / "a.txt"
            path.write_text("hello world\n", encoding="utf-8")
            self.assertEqual(run([str(path)]).split(), ["1", "2", "12", str(path)])
