"""The clean report says what its numbers mean (issue 12: 'changes per iteration' summed to more than 'changed')."""

from __future__ import annotations

from aiforge.clean._report import _per_iteration


def test_iterations_that_add_up_to_more_than_the_net_change_say_why() -> None:
    text = _per_iteration({"changed": 171, "changed_per_iteration": [120, 50, 27]})
    assert text == (" Labels changed in each iteration: 120, 50, 27 (197 changes in all: some labels changed in more "
                    "than one iteration or went back to their given value, so 171 differ from the given labels at "
                    "the end).")


def test_iterations_that_add_up_need_no_note_and_one_iteration_needs_no_list() -> None:
    assert _per_iteration({"changed": 30, "changed_per_iteration": [20, 10]}) == (
        " Labels changed in each iteration: 20, 10.")
    assert _per_iteration({"changed": 8, "changed_per_iteration": [8]}) == ""
