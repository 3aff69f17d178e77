"""Code a page shows as the code of a file is that file, word for word: a block after
<!-- doc-test: same-as PATH --> (docs/architecture.md's worked examples) must equal PATH in the
repository, so a page cannot show an example the code has moved away from."""
import glob
import os
import unittest

import doc_blocks
import systest


def same_as_blocks(markdown):
    """(path, block) for each block of `markdown` that says it is a file of the repository."""
    return [(b.directive[len("same-as "):].strip(), b) for b in doc_blocks.blocks(markdown)
            if b.directive and b.directive.startswith("same-as ")]


class DocCodeTest(unittest.TestCase):
    def test_blocks_shown_as_a_file_are_that_file(self):
        shown = 0
        for page in sorted(glob.glob(os.path.join(systest.REPO, "docs", "*.md"))):
            with open(page) as f:
                text = f.read()
            for path, block in same_as_blocks(text):
                where = "%s:%d" % (os.path.relpath(page, systest.REPO), block.line_no)
                full = os.path.join(systest.REPO, path)
                self.assertTrue(os.path.isfile(full), "%s shows %s, which does not exist" % (where, path))
                with open(full) as f:
                    want = f.read().rstrip("\n").split("\n")
                self.assertEqual(block.lines, want, "%s no longer shows %s as it is" % (where, path))
                shown += 1
        self.assertGreater(shown, 0, "no page shows a file with a same-as block")

    def test_a_changed_block_is_caught(self):
        page = "<!-- doc-test: same-as a.cc -->\n```cpp\nint x;\n```\n"
        [(path, block)] = same_as_blocks(page)
        self.assertEqual((path, block.lines), ("a.cc", ["int x;"]))
        self.assertEqual(same_as_blocks("```cpp\nint x;\n```\n"), [])


if __name__ == "__main__":
    unittest.main()
