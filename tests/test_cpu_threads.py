"""The CPU thread policy: one torch thread on machines with two cores or fewer, an explicit count always wins."""

from __future__ import annotations

import pytest
import torch

from backend.model.cpu_threads import available_cores, configure_threads, default_threads


@pytest.mark.parametrize(
    ("cores", "torch_default", "expected"), [(1, 1, 1), (2, 2, 1), (2, 8, 1), (4, 4, 4), (16, 8, 8)]
)
def test_small_machines_get_one_thread_and_larger_ones_keep_torchs_default(cores, torch_default, expected) -> None:
    assert default_threads(cores, torch_default) == expected


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_an_explicit_count_is_applied(restore_threads) -> None:
    assert configure_threads(3) == 3
    assert torch.get_num_threads() == 3


def test_automatic_count_follows_the_cores_this_process_may_use(restore_threads) -> None:
    torch.set_num_threads(5)
    expected = 1 if available_cores() <= 2 else 5
    assert configure_threads(0) == expected == torch.get_num_threads()


def test_a_negative_count_is_refused_naming_the_option() -> None:
    with pytest.raises(ValueError, match="threads"):
        configure_threads(-1)
