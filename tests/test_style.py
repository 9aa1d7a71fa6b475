"""Style rules of the exported library (the teaching issue): no line over 120 characters, no statements chained with `;`,
and in the method modules no name of one or two letters unless it is a paper's symbol, a shape letter or a loop index.

The notebooks are the source: a failure names the module and line; fix the cell it came from (the `# %% ../nbs/...`
comment above it says which) and run `nbdev_export`. Exempt are the two things nbdev writes itself: `_modidx.py`
(the index of names) and the first line of `__all__`, which nbdev wraps at 120 characters counted after `__all__ = `.
"""
import ast
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


# Names of one or two letters allowed in medseg_nb/methods (every module): the shape letters of the docstrings
# (B x C x H x W, L tokens, N states, K classes or codes, ...), the symbols every paper here shares (x input, y output,
# z latent, u, v coordinates or inputs, h hidden state or height, w width or weights, mu, dt the step Delta, zq the
# quantised z, tau, xi), coordinates and axes, and PyTorch's and matplotlib's own parameter names (lr, ax).
SHAPES = set('B C H W L N K D E S T G A P R M F Q'.split())
SHARED = set('x y z u v h w mu dt zq tau xi'.split())
COORDS = set('x0 x1 y0 y1 xs ys xx yy cx cy fx fy kx ky dx dy'.split())
CONVENTIONS = {'lr', 'ax'}
# Each paper's own symbols, where the module's docstrings and equation comments use them.
SYMBOLS = {
    'nsda.py': {'a', 'd2'},                                   # the attention a and the squared deviation d^2
    'lomix.py': {'k'},                                        # the k logit maps mixed
    'baselines.py': {'t'},                                    # the ramp-up time t in exp(-5 (1 - t)^2)
    'arco/stratified_sampling.py': {'n'},                     # n anchors drawn, n_m per stratum
    'vqseg/model.py': {'f'},                                  # the frozen target features f in sg(f)
    'vqseg/vector_quantization.py': {'d'},                    # the distances d_ij = ||e_i - e_j||^2
    'gausam/contourlet.py': {'g', 'k', 'd', 't'},             # synthesis filter g, sub-band k, Meyer's r(t) of half-width d
    'gausam/gaussian_field.py': {'q', 'n', 'p'},              # query points q, n primitives, soft Dice of p against y
    'graphseg/model.py': {'a', 'b', 'm', 's', 'Lx', 'Ly'},    # Gamma(a, b) over m factors, structure s, image gradients
    'match/model.py': {'p', 'b', 'd', 'Ma', 'Mb'},            # probability map p, birth b, death d, component masks M
    'match/persistence.py': {'p', 'b', 'd', 'k', 't'},        # p, birth b, death d, homology dimension k, threshold t
    'mamba_home/selective_scan.py': {'b', 'd', 'dA'},         # mamba-ssm's b x d x L, and exp(delta A)
    'mamba_home/soft_moe.py': {'d', 'm', 'D2', 'C2'},         # token width d, m tokens per slot, level-2 dispatch, combine
    'mamba_home/triton_scan.py': {'b', 'd', 'n', 't', 'k', 'j', 'dA', 'dB', 'dC', 'du', 'dy'},  # program indices, grads
}
METHODS = LIB / 'methods'


def short_names(text: str, allowed: set) -> list:
    """(line, name) of every assigned name or parameter of one or two letters (underscores not counted) that is not in
    `allowed`; loop and comprehension targets are exempt."""
    tree = ast.parse(text)
    loop = {id(n) for node in ast.walk(tree) if isinstance(node, (ast.For, ast.comprehension))
            for n in ast.walk(node.target) if isinstance(n, ast.Name)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store) and id(node) not in loop:
            found.append((node.lineno, node.id))
        elif isinstance(node, ast.arg):
            found.append((node.lineno, node.arg))
    return sorted((i, name) for i, name in found
                  if name != '_' and len(name.strip('_')) <= 2 and name not in allowed and name.strip('_') not in allowed)


def test_the_short_name_check_catches_what_it_looks_for():
    src = 'def f(n, x):\n    c = x\n    for i in range(n):\n        c += i\n    u_ = [k for k in c]\n    return c\n'
    assert short_names(src, SHAPES | SHARED) == [(1, 'n'), (2, 'c'), (4, 'c')]  # c rebound by +=
    assert short_names(src, SHAPES | SHARED | {'n', 'c'}) == []


def test_method_modules_use_no_short_names_but_symbols():
    files = sorted(METHODS.rglob('*.py'))
    assert len(files) > 15, f'expected the method modules under {METHODS}, found {len(files)}'
    assert set(SYMBOLS) <= {str(p.relative_to(METHODS)) for p in files}, 'SYMBOLS names a module that does not exist'
    bad = []
    for p in files:
        rel = str(p.relative_to(METHODS))
        allowed = SHAPES | SHARED | COORDS | CONVENTIONS | SYMBOLS.get(rel, set())
        bad += [f'methods/{rel}:{i} {name}' for i, name in short_names(p.read_text(), allowed)]
    assert not bad, (f'{len(bad)} names of one or two letters that are no symbol of the paper (say what the value is, '
                     'or add the symbol to SYMBOLS with the equation it comes from):\n' + '\n'.join(bad[:60]))
