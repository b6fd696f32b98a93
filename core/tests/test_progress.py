from __future__ import annotations

import sys

import pytest

from rvos_core.progress import progress, progress_bar


def test_bars_off_do_not_import_tqdm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RVOS_PROGRESS", "0")
    monkeypatch.delitem(sys.modules, "tqdm", raising=False)
    assert list(progress(iter([3, 1, 2]), "videos")) == [3, 1, 2]
    with progress_bar(5, "train", unit="step") as bar:
        bar.update(2)
        assert bar.disable
    assert "tqdm" not in sys.modules


def test_bars_on_count_and_show_the_description(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RVOS_PROGRESS", "1")
    assert list(progress(range(4), "vote soc_mutr", total=4)) == [0, 1, 2, 3]
    with progress_bar(3, "train tiny", unit="step") as bar:
        bar.update(3)
        assert not bar.disable and bar.n == 3
    err = capsys.readouterr().err
    assert "vote soc_mutr" in err and "train tiny" in err and "3/3" in err
