"""Bad and odd inputs through ``processing.run`` in a headless QGIS (the table is ``bad_inputs.CASES``,
shared with the command line): a user error is a ``QgsProcessingException`` with a one-line message and
nothing written; an odd but valid input gives the right grid, CRS, dtype and nodata."""

from __future__ import annotations

import pytest
from qgis.core import QgsProcessingException, QgsProcessingFeedback, QgsRasterLayer

from bad_inputs import CASES, ITERATIONS, Case, Inputs, assert_outcome, prepare
from qgis_helpers import user_message

pytestmark = [pytest.mark.qgis, pytest.mark.usefixtures("internal_sr_provider")]


def layer_or_path(path: str) -> str | QgsRasterLayer:
    """A GDAL dataset name (``/vsizip/…``) as a loaded layer, as a user adds it to the project (Processing
    resolves strings to files, layer ids and names only); any other input as its path."""
    return QgsRasterLayer(path, "input") if path.startswith("/vsi") else path


def algorithm_and_parameters(case: Case, inputs: Inputs, output: str) -> tuple[str, dict]:
    """``case`` as a Processing algorithm id and its parameters."""
    inputs = tuple(layer_or_path(path) for path in inputs)
    run = {"ITERATIONS": ITERATIONS, "DEVICE": "cpu", "OUTPUT": output}
    if case.method == "guided":
        kernels = {"KERNEL": "gaussian", "GUIDE_KERNEL": "gaussian", "SIGMA": 0.5}
        return "internal_sr:guided_dip", {"INPUT": inputs[0], "GUIDE": inputs[1], **kernels, **run}
    bands = {"BANDS": list(case.bands)} if case.bands else {}
    return "internal_sr:dip", {"INPUT": inputs[0], "SCALE": case.scale, **bands, **run}


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_processing(case: Case, tmp_path) -> None:
    import processing

    prepared = prepare(case, tmp_path)
    algorithm, parameters = algorithm_and_parameters(case, prepared.inputs, prepared.output)
    try:
        result = processing.run(algorithm, parameters, feedback=QgsProcessingFeedback())
    except QgsProcessingException as error:
        message = user_message(error)
    else:
        assert result["OUTPUT"] == prepared.output
        message = None
    assert_outcome(case, prepared, message)
