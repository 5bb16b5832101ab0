import os
import re

import pytest
import torch as th

# The machines running the suite have few cores shared by several processes
th.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")

# Top-level modules of this repository: a test that skips because one of them does not import hides a broken project
PROJECT_MODULES = ("sb3_symmetric", "benchmarks", "_sb3_symmetric_zoo_hook")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not th.cuda.is_available():
        skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip_gpu)


def _fail_skips_on_project_imports(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Turn `pytest.importorskip("<project module>")` skips into failures: skips are for missing optional system parts."""
    if not (report.skipped and isinstance(report.longrepr, tuple)):
        return
    reason = str(report.longrepr[2])
    match = re.search(r"could not import '([\w.]+)'", reason)
    if match and match.group(1).split(".")[0] in PROJECT_MODULES:
        report.outcome = "failed"
        report.longrepr = f"{reason}\nA module of this project must import; fix it instead of skipping the tests that need it."


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    report = yield
    _fail_skips_on_project_imports(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    _fail_skips_on_project_imports(report)
    return report
