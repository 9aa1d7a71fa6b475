"""Style rules of the exported library (the teaching issue): no line over 120 characters, no statements chained with `;`.

The notebooks are the source: a failure names the module and line; fix the cell it came from (the `# %% ../nbs/...`
comment above it says which) and run `nbdev_export`. Exempt are the two things nbdev writes itself: `_modidx.py`
(the index of names) and the first line of `__all__`, which nbdev wraps at 120 characters counted after `__all__ = `.
"""
import io
import tokenize
from pathlib import Path

LIB = Path(__file__).parents[1] / 'medseg_nb'
MAX = 120


def modules():
    files = sorted(p for p in LIB.rglob('*.py') if p.name != '_modidx.py')
    assert len(files) > 20, f'expected the exported modules under {LIB}, found {len(files)} files'
    return files


def long_lines(text: str, limit: int = MAX) -> list:
    "(line number, length) of every line longer than `limit`, except nbdev's `__all__ = [...]` line."
    return [(i, len(line)) for i, line in enumerate(text.splitlines(), 1)
            if len(line) > limit and not line.startswith('__all__ = [')]


def chained_statements(text: str) -> list:
    "Line numbers of `;` operators (statements joined on one line); a `;` inside a string or comment is not one."
    return [t.start[0] for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type == tokenize.OP and t.string == ';']


def test_the_checks_catch_what_they_look_for():
    src = 'x = 1; y = 2\ns = "a; b"  # c; d\n' + 'z = ' + '1 + ' * 40 + '1\n' + '__all__ = [' + "'a', " * 30 + ']\n'
    assert chained_statements(src) == [1]
    assert long_lines(src) == [(3, len('z = ' + '1 + ' * 40 + '1'))]


def test_no_line_over_120_characters():
    bad = [f'{p.relative_to(LIB.parent)}:{i} ({n} chars)' for p in modules() for i, n in long_lines(p.read_text())]
    assert not bad, f'{len(bad)} lines over {MAX} characters (fix the notebook cell, then nbdev_export):\n' + '\n'.join(bad[:40])


def test_no_statements_chained_with_semicolons():
    bad = [f'{p.relative_to(LIB.parent)}:{i}' for p in modules() for i in chained_statements(p.read_text())]
    assert not bad, f'{len(bad)} statements joined with ";" (one statement per line):\n' + '\n'.join(bad[:40])
