"""Count lines, words and characters of text files."""
