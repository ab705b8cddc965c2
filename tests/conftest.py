"""Shared pytest setup: tests run offline, on CPU, with a private cache folder."""
import os
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def pytest_addoption(parser):
    parser.addoption("--flags", default="", help="space-separated notebook flags to run too (e.g. 'slow')")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    "Keep test caches apart from the user's unless ELF_S2T_TEST_CACHE says where to share them."
    shared = os.environ.get("ELF_S2T_TEST_CACHE")
    os.environ["ELF_S2T_CACHE"] = shared or str(tmp_path_factory.mktemp("elf_cache"))
    yield


def pytest_configure(config):
    "Under pytest-xdist every worker gets one torch thread: two workers x two threads on two cores thrash."
    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch
        torch.set_num_threads(1)
