"""``PartRunner``: independent calls over two threads, the same results as one after another."""

import threading
import time

import numpy as np
import pytest

from models.part_runner import PartRunner


def test_results_by_name_and_a_longest_first_split_on_two_threads():
    runner = PartRunner()
    seen: dict[str, int] = {}

    def call(name, seconds):
        def run():
            seen[name] = threading.get_ident()
            time.sleep(seconds)
            return name.upper()
        return run

    calls = {"a": call("a", 0.03), "b": call("b", 0.001), "c": call("c", 0.02), "d": call("d", 0.001)}
    try:
        assert runner.run(calls) == {"a": "A", "b": "B", "c": "C", "d": "D"}
        assert list(runner.run(calls)) == ["a", "b", "c", "d"]  # the callers' order
        assert set(runner.cost) == set(calls) and runner.cost["a"] > runner.cost["b"]
        here, there = runner.split(list(calls))
        assert {"a", "c"} == {here[0], there[0]}  # the two costliest on different threads
        runner.run(calls)
        assert seen["a"] != seen["c"] and threading.get_ident() in (seen["a"], seen["c"])
    finally:
        runner.close()


def test_a_failing_call_raises_after_both_threads_finish():
    runner = PartRunner()
    finished = []

    def slow():
        time.sleep(0.05)
        finished.append(1)

    def bad():
        raise ValueError("boom")

    runner.cost.update({"slow": 1.0, "bad": 1.0})
    try:
        with pytest.raises(ValueError, match="boom"):
            runner.run({"slow": slow, "bad": bad})
        assert finished == [1]
    finally:
        runner.close()


def test_a_stack_bundle_predicts_the_same_over_two_threads(tmp_path):
    """``StackBundle.predict(X, run=PartRunner().run)`` equals the sequential prediction (a real stack)."""
    from models.intervals import ConformalInterval
    from models.learners import create_learner
    from models.stacking import StackedEnsemble
    from models.train_stack import StackBundle

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6))
    y = X[:, 0] * 2 + rng.normal(size=400)
    postdate = np.arange(400.0)
    small = {"n_estimators": 20}
    ens = StackedEnsemble({"lgbm": create_learner("lgbm", small, ()), "xgboost": create_learner("xgboost", small, ())},
                          n_folds=2).fit(X, y, postdate)
    interval = ConformalInterval(create_learner("lgbm", {**small, "quantile": 0.1}, ()).fit(X, y),
                                 create_learner("lgbm", {**small, "quantile": 0.9}, ()).fit(X, y), coverage=0.8)
    interval.calibrate(X[-100:], y[-100:])
    bundle = StackBundle(ens, interval, [f"f{i}" for i in range(6)], ())
    runner = PartRunner()
    try:
        for rows in (X[:1], X[5:8]):
            want = bundle.predict(rows)
            got = bundle.predict(rows, run=runner.run)
            assert set(got) == {"pred", "interval_lo", "interval_hi"}
            assert all(np.array_equal(got[k], want[k]) for k in want)
        np.testing.assert_array_equal(bundle.predict(X[:3])["pred"], ens.predict(X[:3]))
        np.testing.assert_array_equal(bundle.predict(X[:3])["interval_lo"], interval.predict(X[:3])[0])
    finally:
        runner.close()
