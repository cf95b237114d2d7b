import numpy as np
import pytest

from models.submission import SubmissionConfig, build_submission, check_submission


def test_build_and_check():
    cfg = SubmissionConfig()
    sub = build_submission(np.array([30, 10, 20]), np.array([3.0, 1.23456, 2.0]), cfg)
    assert list(sub) == ["version", "result", "external_data"]
    assert sub["version"] == "VERSION 1.0"
    assert sub["result"][0] == {"post_id": "10", "popularity_score": 1.2346}
    assert [r["post_id"] for r in sub["result"]] == ["10", "20", "30"]
    assert sub["external_data"] == {"used": "false", "details": ""}
    check_submission(sub, {10, 20, 30}, cfg)
    with pytest.raises(ValueError, match="covers"):
        check_submission(sub, {10, 20, 30, 40}, cfg)


def test_prefix_form():
    cfg = SubmissionConfig(version="VERSION 1.2", post_id_prefix="post")
    sub = build_submission(np.array([50731]), np.array([7.0]), cfg)
    assert sub["result"][0]["post_id"] == "post50731"
    check_submission(sub, {50731}, cfg)


@pytest.mark.parametrize("pids,scores", [([1, 1], [1.0, 2.0]), ([1, 2], [1.0, np.nan]), ([1], [1.0, 2.0])])
def test_invalid(pids, scores):
    with pytest.raises(ValueError):
        build_submission(np.array(pids), np.array(scores), SubmissionConfig())
