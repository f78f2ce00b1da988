"""Shared pytest fixtures. QGIS itself is started by pytest-qgis (``qgis_app``, ``qgis_iface``, …)."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session", autouse=True)
def committed_data_stays_untouched() -> Iterator[None]:
    """No test writes beside the committed rasters (QGIS's ``.aux.xml`` statistics included): they work on copies."""
    data = os.path.join(os.path.dirname(__file__), "data")
    before = set(os.listdir(data))
    yield
    added = sorted((set(os.listdir(data)) - before) | {name for name in os.listdir(data) if name.endswith(".aux.xml")})
    assert not added, f"tests wrote beside the committed data in tests/data: {added} (work on copies)"


@pytest.fixture(autouse=True)
def idle_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's load average reads as idle, so that no run's log holds the busy-CPU warning
    (``core.device.busy_cpus_note``) because of what else this machine runs: tests that compare a log or stderr
    line by line would pass or fail with the load. Tests of the warning set their own load after this."""
    if hasattr(os, "getloadavg"):
        monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))


@pytest.fixture(autouse=True)
def collect_cycles_while_qgis_runs(request: pytest.FixtureRequest) -> Iterator[None]:
    """Free each QGIS test's reference cycles before the next test, while QGIS is still up.

    A test that keeps a ``processing.run`` error (``pytest.raises(...) as error``) holds a cycle through
    the traceback's frames, and with it Processing's algorithm and context objects. Collected only at
    interpreter exit, after pytest-qgis has shut QGIS down, their destructors corrupted the heap
    (a segmentation fault or "double free" after every test had passed, depending on test order).
    """
    yield
    if request.node.get_closest_marker("qgis") is not None:  # a full collection costs ~0.3 s: QGIS tests only
        gc.collect()


@pytest.fixture(scope="module")
def internal_sr_provider(qgis_processing: None) -> Iterator[object]:
    """The ``internal_sr`` Processing provider registered for one test module, removed afterwards."""
    from qgis.core import QgsApplication

    from internal_sr.algorithms.provider import InternalSRProvider

    registry = QgsApplication.processingRegistry()
    assert registry.providerById("internal_sr") is None, "the provider is already registered"
    provider = InternalSRProvider()
    assert registry.addProvider(provider)
    yield provider
    registry.removeProvider(provider)


@pytest.fixture()
def empty_project(qgis_iface) -> Iterator[object]:
    """An empty QGIS project for the test, emptied again afterwards."""
    from qgis.core import QgsProject

    qgis_iface.newProject()
    yield QgsProject.instance()
    qgis_iface.newProject()


@pytest.fixture()
def messages(qgis_iface):
    """The stub message bar's messages per level, emptied before the test."""
    bar = qgis_iface.messageBar()
    for level in bar.messages:
        bar.messages[level].clear()
    return bar.messages
