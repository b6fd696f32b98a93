from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import pytest
from core_testlib import square_or_fail

from rvos_core.errors import ConfigError, InputError
from rvos_core.parallel import map_videos


@pytest.mark.parametrize("workers", [1, 2])
def test_results_in_input_order(workers: int) -> None:
    assert map_videos(square_or_fail, [3, 1, 2, 5], workers, desc="t") == [9, 1, 4, 25]


def test_an_error_in_a_worker_arrives_intact() -> None:
    with pytest.raises(InputError, match=r"item-2\.png: negative item") as info:
        map_videos(square_or_fail, [1, -2, 3], workers=2, desc="t")
    assert info.value.path == Path("/data/item-2.png")


def test_errors_pickle() -> None:
    error = pickle.loads(pickle.dumps(InputError(Path("/x.png"), "bad")))
    assert (error.path, error.problem, str(error)) == (Path("/x.png"), "bad", "/x.png: bad")
    assert str(pickle.loads(pickle.dumps(ConfigError("DATA is not set")))) == "DATA is not set"


def test_an_unknown_executor_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXECUTOR", "spark")
    with pytest.raises(ConfigError, match="EXECUTOR=spark: expected one of local, ray"):
        map_videos(square_or_fail, [1, 2], workers=1, desc="t")


def test_ray_without_ray_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    if importlib.util.find_spec("ray") is not None:
        pytest.skip(
            "Ray is installed here (the ray environment runs it: core/tests/test_ray_pool.py)"
        )
    monkeypatch.setenv("EXECUTOR", "ray")
    with pytest.raises(ConfigError, match="EXECUTOR=ray needs Ray, which is not installed"):
        map_videos(square_or_fail, [1, 2], workers=1, desc="t")
