"""Shared pytest fixtures. QGIS itself is started by pytest-qgis (``qgis_app``, ``qgis_iface``, …)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


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
