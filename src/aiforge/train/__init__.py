"""TRAIN: a training job from code + data + resources or a deadline, run where the resources are, its model registered.

::

    result = aiforge.train("train.yaml")        # freeze the code, pin the data, plan, run, export, register
    result.model.ref                            # 'digits@v3'; `aiforge serve up digits@v3` serves it
    aiforge.train.plan("train.yaml")            # only the deadline plan: the fewest CPUs that finish in time

The job's code gets a :class:`Context` (data, params, ``log_metric``, ``progress``, ``save_model``); see
:mod:`aiforge.train.context`. Runtimes: ``local`` (a subprocess with a real CPU quota and memory limit), ``ray`` (Ray
Jobs on a cluster) and ``k8s`` (a Job manifest and an image build context): :mod:`aiforge.train.runtimes`.
"""

from __future__ import annotations

from aiforge.lazy import lazy_names

__all__ = ["Context", "Data", "Plan", "TimeModel", "TrainResult", "TrainSpec", "current", "load_spec", "plan", "train"]
__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "Context": "aiforge.train.context",
        "Data": "aiforge.train.context",
        "current": "aiforge.train.context",
        "Plan": "aiforge.train.planner",
        "TimeModel": "aiforge.train.planner",
        "TrainResult": "aiforge.train._train",
        "plan": "aiforge.train._train",
        "train": "aiforge.train._train",
        "TrainSpec": "aiforge.train.spec",
        "load_spec": "aiforge.train.spec",
    },
    call="train",
)
