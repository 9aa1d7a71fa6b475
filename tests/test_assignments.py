"""Course assignments: every course notebook builds; graded by the real grader (fresh kernel, nbgrader's Execute and
determine_grade), the reference solution scores full marks, the untouched student copy scores zero, and a planted
common mistake loses exactly the points of the test it should fail. Plus submissions that crash, hang or are not
notebooks: a score and a message, never a hang."""
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from medseg_nb.assignments import ASSIGNMENTS, BEGIN, autograde, build, format_report, grade, grade_many

NBS = Path(__file__).parents[1] / 'nbs'

# (exact text in the reference solution, the mistake, the score it should keep)
MISTAKES = {
    '11_gaussian_fields': ('v = (-sin_t * offset[..., 0]', 'v = (sin_t * offset[..., 0]', 3.0),                    # rotation sign
    '21_graphseg': (' - 1 - logvar + math.log(prior_var))', ' - 1 - logvar)', 3.0),               # forgets the prior's variance
    '31_match': (' if S[i, j] >= one_to_one]', ']', 3.0),                                            # keeps weak assignment pairs
    '41_soft_moe': ('return masked.softmax(-2), logits.softmax(-1)', 'return masked.softmax(-1), logits.softmax(-1)', 3.0),  # dispatch over slots
    '50_lomix': ('zip(convs, maps)]).softmax(0)', 'zip(convs, maps)])', 3.0),                        # raw weights, no softmax
    '60_nsda': ('prefix[..., -1:].expand(*prefix.shape[:-1], radius)', 'prefix.new_zeros(*prefix.shape[:-1], radius)', 3.0),      # wrong right border
    '70_vector_quantization': ('torch.multinomial(off[flat[move]]', 'torch.multinomial(P[flat[move]]', 5.0),  # may keep its own code
    '80_stratified_sampling': ('n_m = quota.floor().long().clamp_min(1)', 'n_m = quota.floor().long()', 3.0),   # empty strata
}


@pytest.fixture(scope='module')
def course(tmp_path_factory):
    out = tmp_path_factory.mktemp('course')
    rows = {r['assignment']: r for r in build([NBS / f'{n}.ipynb' for n in ASSIGNMENTS], out)}
    jobs = {}
    for name, r in rows.items():
        src = nbformat.read(r['source'], as_version=4)
        old, new, _ = MISTAKES[name]
        cells = [c for c in src.cells if BEGIN in c.source and old in c.source]
        assert len(cells) == 1, f'{name}: the planted mistake must edit one solution cell'
        cells[0].source = cells[0].source.replace(old, new)
        wrong = out / f'{name}_mistake.ipynb'; nbformat.write(src, wrong)
        jobs[(name, 'reference')] = (r['source'], r['source'])
        jobs[(name, 'stub')] = (r['student'], None)
        jobs[(name, 'mistake')] = (wrong, r['source'])
    # the class of 24, as an instructor grades one: two processes, each a fresh kernel per notebook
    reps = grade_many(list(jobs.values()), timeout=300, cell_timeout=120, workers=2, progress=False)
    return rows, dict(zip(jobs, reps)), out


def test_every_family_has_an_assignment(course):
    rows, _, _ = course
    assert set(rows) == set(ASSIGNMENTS) == set(MISTAKES)
    for r in rows.values():
        stu = Path(r['student']).read_text()
        assert 'NotImplementedError' in stu and 'BEGIN HIDDEN TESTS' not in stu
        assert 'BEGIN HIDDEN TESTS' in Path(r['source']).read_text()      # every assignment keeps some tests hidden


def test_assignments_have_stated_parts_and_a_written_answer(course):
    """At least three graded parts (about 10 points), one of them a written answer graded by hand; every part is stated
    in the notebook as "Exercise K (P points" with its points; the reference answer is not in the student copy."""
    rows, _, _ = course
    for name, r in rows.items():
        src = nbformat.read(r['source'], as_version=4)
        meta = src.metadata['medseg_nb']
        parts = {**meta['tests'], **meta['written']}
        assert len(parts) >= 3 and meta['written'] and 8 <= meta['max_score'] <= 12, (name, parts)
        text = '\n'.join(c.source for c in src.cells if c.cell_type == 'markdown')
        stated = sorted(float(p) for p in re.findall(r'\*\*Exercise \d+ \((\d+(?:\.\d+)?) points?', text))
        # each test and written part once in the statement, the written part again above its answer cell
        assert sorted(parts.values()) == sorted(_once_each(stated, meta)), (name, stated)
        stu = nbformat.read(r['student'], as_version=4)
        for c in src.cells:
            if c.get('metadata', {}).get('nbgrader', {}).get('solution') and c.cell_type == 'markdown':
                answer = c.source.splitlines()[-1]
                assert not any(answer in v.source for v in stu.cells), f'{name}: the written answer is in the student copy'
                twin = [v for v in stu.cells if v.metadata.get('nbgrader', {}).get('grade_id') == c.metadata['nbgrader']['grade_id']]
                assert twin and 'YOUR ANSWER HERE' in twin[0].source


def _once_each(stated, meta):
    "The stated points with each written part's repetition (above its answer cell) taken out once."
    out = list(stated)
    for p in meta['written'].values():
        out.remove(float(p))
    return out


@pytest.mark.parametrize('name', list(ASSIGNMENTS))
def test_reference_full_stub_zero_mistake_partial(course, name):
    _, res, _ = course
    ref, stub, bad = (res[(name, k)] for k in ('reference', 'stub', 'mistake'))
    assert ref['status'] == 'ok' and ref['score'] == ref['max_score'] > 0, ref
    assert stub['score'] == 0 and stub['max_score'] == ref['max_score'], stub
    assert all('NotImplementedError' in c['message'] for c in stub['cells']), stub
    assert bad['score'] == MISTAKES[name][2], bad
    assert 0 < bad['score'] < bad['max_score']
    assert [w['id'] for w in ref['written']] == [w['id'] for w in stub['written']] and ref['written'], ref
    assert 'YOUR ANSWER HERE' in stub['written'][0]['answer'] and 'YOUR ANSWER HERE' not in ref['written'][0]['answer']


NBGRADER = '80_stratified_sampling'      # one assignment through nbgrader's own pipeline (every one through `grade`)


def test_nbgrader_pipeline_end_to_end(course):
    """generate_assignment, autograde and generate_feedback on the built course, with its gradebook: the reference scores
    every test point, the untouched copy none, the planted mistake what `grade` gives it; the written answer waits for
    the instructor; a feedback page per student."""
    rows, res, out = course
    r = rows[NBGRADER]
    got = autograde(out, NBGRADER, {'reference': r['source'], 'blank': r['student'], 'mistake': out / f'{NBGRADER}_mistake.ipynb'})
    auto_max = res[(NBGRADER, 'reference')]['max_score']
    assert got['reference']['auto_score'] == got['reference']['auto_max'] == auto_max, got['reference']
    assert got['blank']['auto_score'] == 0, got['blank']
    assert got['mistake']['auto_score'] == MISTAKES[NBGRADER][2], got['mistake']
    written = list(nbformat.read(r['source'], as_version=4).metadata['medseg_nb']['written'])
    assert got['reference']['needs_manual_grade'] == written and got['reference']['max_score'] == r['points']
    for who, g in got.items():
        page = Path(g['feedback'])
        assert page.exists() and page.stat().st_size > 1000, (who, page)
    assert (out / 'gradebook.db').exists() and (out / 'release' / NBGRADER / f'{NBGRADER}.ipynb').exists()


def _demo(tmp_path, solution: str):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell(f"def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("# grade: double 2\nassert double(3) == 6")])
    nbformat.write(nb, tmp_path / 'demo.ipynb')
    r = build([tmp_path / 'demo.ipynb'], tmp_path / 'course')[0]
    stu = nbformat.read(r['student'], as_version=4)
    stu.cells[0].source = solution
    nbformat.write(stu, tmp_path / 'sub.ipynb')
    return tmp_path / 'sub.ipynb'


BAD = [   # (submission, score): each graded by `grade_many` in one batch, and the ones that go wrong by `grade` alone
    ('def double(x):\n    return x + x', 2.0),
    ('import os\nos._exit(1)', 0.0),                                             # kills its kernel
    ('def double(x):\n    while True: pass', 0.0),                              # endless: the cell timeout ends it
    ('import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ndef double(x):\n    while True: pass', 0.0),   # ignores interrupts
    ('import sys\nsys.stderr.write("noise")\ndef double(x): return 2 * x', 2.0),  # stderr outside a test cell is fine
]


def test_bad_submissions_get_a_score_and_a_message(tmp_path):
    """A class with a crash, two hangs and stderr noise in it: every submission gets its score and a message, in the
    order given (the one that killed its kernel is graded again on its own, by `grade`)."""
    subs = []
    for k, (solution, _) in enumerate(BAD):
        (tmp_path / str(k)).mkdir()
        subs.append(_demo(tmp_path / str(k), solution))
    t = time.time()
    reps = grade_many(subs, timeout=60, cell_timeout=5, progress=False)
    assert time.time() - t < 150
    for rep, sub, (solution, expect) in zip(reps, subs, BAD):
        assert rep['notebook'] == str(sub) and rep['status'] == 'ok'
        assert rep['score'] == expect and rep['max_score'] == 2.0, (solution, rep)
        if expect == 0: assert rep['cells'][0]['message'] or rep['message'], rep
        assert not rep.get('restarts'), rep          # a kernel the submission killed is not started again


# sitecustomize for the grader's children: the first $MEDSEG_TEST_KILL kernels exit before they answer
_KILL = '''import os, sys
if any('ipykernel_launcher' in a for a in sys.orig_argv):
    d = os.environ['MEDSEG_TEST_KILLED']
    if len(os.listdir(d)) < int(os.environ['MEDSEG_TEST_KILL']):
        open(os.path.join(d, str(os.getpid())), 'w').close()
        os._exit(1)
'''


def _kernels_die_at_start(tmp_path, monkeypatch, n: int) -> Path:
    "The next `n` kernels the grader starts die before their first reply; returns the folder that counts them."
    site, killed = tmp_path / 'site', tmp_path / f'killed{n}'
    site.mkdir(exist_ok=True); killed.mkdir()
    (site / 'sitecustomize.py').write_text(_KILL)
    monkeypatch.setenv('PYTHONPATH', os.pathsep.join([str(site)] + [p for p in [os.environ.get('PYTHONPATH')] if p]))
    monkeypatch.setenv('MEDSEG_TEST_KILLED', str(killed)); monkeypatch.setenv('MEDSEG_TEST_KILL', str(n))
    return killed


def test_a_kernel_that_dies_before_its_first_reply_is_started_again(tmp_path, monkeypatch):
    """CI once gave 21_graphseg's planted mistake 0 points instead of 3: "the notebook stopped before this cell ran
    (RuntimeError: Kernel died before replying to kernel_info)". None of the submission had run. The grader starts such
    a kernel again (twice at most) and says so; three that never answer give status 'no-kernel', not a student's 0."""
    sub = _demo(tmp_path, 'def double(x):\n    return 2 * x')
    killed = _kernels_die_at_start(tmp_path, monkeypatch, 1)
    rep = grade(sub, timeout=60, cell_timeout=10)
    assert len(os.listdir(killed)) == 1 and rep['score'] == 2.0 and rep['restarts'] == 1 and rep['status'] == 'ok', rep
    assert 'the kernel died before its first reply; started again 1x' in format_report(rep)
    killed = _kernels_die_at_start(tmp_path, monkeypatch, 5)
    rep = grade(sub, timeout=60, cell_timeout=10)
    assert len(os.listdir(killed)) == 3 and rep['score'] == 0 and rep['status'] == 'no-kernel', rep
    assert 'grade again' in rep['message'] and 'no-kernel' in format_report(rep)


def test_nbgrader_pipeline_grades_the_class_when_one_submission_kills_its_kernel(tmp_path):
    """nbgrader grades the rest of the class, then exits with an error; `autograde` raised on it, so the class got no
    results and no feedback. Now the others are graded with their feedback, and the one that killed its kernel is
    reported as failed with nbgrader's error."""
    good = _demo(tmp_path, 'def double(x):\n    return 2 * x')
    (tmp_path / 'b').mkdir()
    dead = _demo(tmp_path / 'b', 'import os\nos._exit(1)')                  # a second copy, its own course
    got = autograde(tmp_path / 'course', 'demo', {'alice': good, 'bob': dead}, cell_timeout=10)
    assert got['alice']['auto_score'] == 2.0 and got['alice']['status'] == 'ok' and Path(got['alice']['feedback']).exists()
    bob = got['bob']
    assert bob['status'] == 'failed' and bob['auto_score'] == 0 and bob['feedback'] is None, bob
    assert 'DeadKernelError: Kernel died' in bob['message'], bob


def test_nbgrader_pipeline_starts_a_dead_kernel_again(tmp_path, monkeypatch):
    "`autograde` runs nbgrader again when one of its kernels died before its first reply (nbgrader itself fails)."
    sub = _demo(tmp_path, 'def double(x):\n    return 2 * x')
    killed = _kernels_die_at_start(tmp_path, monkeypatch, 1)
    got = autograde(tmp_path / 'course', 'demo', {'alice': sub}, cell_timeout=10)
    assert len(os.listdir(killed)) == 1 and got['alice']['auto_score'] == got['alice']['auto_max'] == 2.0, got


def test_unreadable_and_cli_json(tmp_path, capsys):
    bad = tmp_path / 'x.ipynb'; bad.write_text('{not json')
    rep = grade(bad)
    assert rep['status'] == 'unreadable' and rep['score'] == 0
    sub = _demo(tmp_path, 'def double(x):\n    return 2 * x')
    from medseg_nb.cli import main
    assert main(['assignment', 'grade', str(sub), '--json']) == 0            # one notebook: its report
    rep = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert rep['score'] == 2.0 and rep['cells'][0]['id'] == 'double'
    # a class, from the command line: one report each, in the order given, the unreadable one's too
    r = subprocess.run([sys.executable, '-m', 'medseg_nb.cli', 'assignment', 'grade', str(sub), str(bad), '--workers', '2',
                        '--json'], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    reps = json.loads(r.stdout.strip().splitlines()[-1])['reports']
    assert [(x['score'], x['status']) for x in reps] == [(2.0, 'ok'), (0.0, 'unreadable')]


def _numbers(text: str) -> list[float]:
    "The numeric literals of `text` in order, leaving out tensor shapes (the arguments of randn, zeros, ...)."
    text = re.sub(r'\b(?:randn|rand|randint|zeros|ones|empty|full|arange|Conv[123]d|Linear)\([^()]*\)', '', text)
    return [float(x) for x in re.findall(r'(?<![\w.])\d+(?:\.\d+)?(?:e-?\d+)?', text)]


def _contains(seq: list, sub: list) -> bool:
    return any(seq[i:i + len(sub)] == sub for i in range(len(seq) - len(sub) + 1))


def test_hidden_tests_do_not_appear_in_the_student_copy(tmp_path):
    """A hidden test's case must not be readable in the student's copy: no line of a hidden block appears there, and no
    run of four numbers of a hidden statement (three if it has three), two of them other than 0, 1 and 2 (its case,
    e.g. the sizes and n of an allocation), appears among the numbers of a visible cell."""
    rows = build([NBS / f'{n}.ipynb' for n in ASSIGNMENTS], tmp_path)
    for r in rows:
        src = nbformat.read(r['source'], as_version=4)
        stu = nbformat.read(r['student'], as_version=4)
        visible = [c.source for c in stu.cells]
        for c in src.cells:
            for block in re.findall(r'### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS', c.source, re.S):
                for line in (s.strip() for s in block.splitlines()):
                    if line.startswith(('#', 'import ', 'from ')) or len(line) < 25: continue
                    assert not any(line in v for v in visible), f"{r['assignment']}: hidden line visible: {line}"
                    nums = _numbers(line)
                    k = min(4, len(nums))
                    for w in (nums[i:i + k] for i in range(len(nums) - k + 1)):
                        if k < 3 or sum(x not in (0, 1, 2) for x in w) < 2: continue    # a case, not an index
                        leak = [v for v in visible if _contains(_numbers(v), w)]
                        assert not leak, f"{r['assignment']}: the hidden case {line!r} is readable in a visible cell: {leak[0][:200]}"


def test_grading_children_may_skip_rfc3987_syntax():
    """The grader's child processes import nbformat without rfc3987-syntax (`_CHILD`: 2 s per process). That holds only
    while no schema nbformat or nbgrader validates with uses a string "format" (the only thing it checks); and a child
    started that way still reads, validates and writes a notebook."""
    import glob, os
    import nbgrader
    from medseg_nb.assignments import _CHILD
    for pkg in (nbformat, nbgrader):
        for f in glob.glob(os.path.join(os.path.dirname(pkg.__file__), '**', '*.json'), recursive=True):
            # the keyword: "format": "iri" (a property named "format", as raw cells have, is an object)
            assert not re.search(r'"format"\s*:\s*"', Path(f).read_text(errors='ignore')), f
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1 + 1')])
    code = _CHILD + ('import nbformat; nb = nbformat.reads(sys.stdin.read(), as_version=4); nbformat.validate(nb); '
                     "print(type(sys.modules['rfc3987_syntax']).__name__, len(nb.cells))")
    r = subprocess.run([sys.executable, '-c', code], input=nbformat.writes(nb), capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.split() == ['NoneType', '1'], r.stderr[-2000:]


def test_assignment_build_takes_assignment_names(tmp_path, monkeypatch):
    """`medseg-nb assignment build 60_nsda` (the name `assignment autograde` takes) said "no notebook at 60_nsda",
    and any other unknown name did not say what `build` takes. Names and 'all' resolve under nbs/; paths stay paths."""
    from medseg_nb.assignments import course_notebooks
    assert course_notebooks(['60_nsda'], NBS) == [NBS / '60_nsda.ipynb']
    assert course_notebooks(['all'], NBS) == [NBS / f'{n}.ipynb' for n in ASSIGNMENTS]
    assert course_notebooks([str(NBS / '50_lomix.ipynb')], NBS) == [NBS / '50_lomix.ipynb']
    with pytest.raises(FileNotFoundError, match="no notebook at 60_nsdaa; expected a notebook path, 'all' or an "
                                                "assignment name: 11_gaussian_fields, 21_graphseg"):
        course_notebooks(['60_nsdaa'], NBS)
    with pytest.raises(FileNotFoundError, match="run from the project's root"):
        course_notebooks(['60_nsda'], tmp_path)
    monkeypatch.chdir(NBS.parent)
    r = subprocess.run([sys.executable, '-m', 'medseg_nb.cli', 'assignment', 'build', 'nsda', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "expected a notebook path, 'all' or an assignment name: " in r.stderr, r.stderr
