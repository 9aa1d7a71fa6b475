"""`grade_many`'s watch on a worker that one submission holds past the timeout. A file of its own: the test mostly
waits (40 s, little CPU), and pytest's workers take whole files, so it runs beside test_assignments.py's long chain
instead of lengthening it."""
from medseg_nb.assignments import grade_many
from test_assignments import BAD, _demo


def test_a_submission_that_holds_its_worker_past_the_timeout_is_graded_again_alone(tmp_path):
    """A correct submission that takes 40 s in all (no cell near the cell timeout) in a class graded with timeout=12:
    its worker is killed 12 s after its last finished submission, and `grade` alone reports the timeout. Without that
    watch the worker would have run it to the end and given it full points."""
    slow = 'import time\nfor _ in range(40): time.sleep(1)\ndef double(x): return 2 * x'
    subs = []
    for k, solution in enumerate([BAD[0][0], slow]):
        (tmp_path / str(k)).mkdir()
        subs.append(_demo(tmp_path / str(k), solution))
    ok, held = grade_many(subs, timeout=12, cell_timeout=60, workers=1, progress=False)
    assert ok['status'] == 'ok' and ok['score'] == 2.0, ok
    assert held['status'] == 'timeout' and held['score'] == 0.0, held
    assert held['message'] == 'the submission did not finish within 12 s', held
