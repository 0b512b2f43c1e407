"""How hard the property-based hostile-input tests try.

They run in ``make test``, so the default is modest; ``FUZZ_EXAMPLES=2000 make test`` (or any
pytest run) makes every fuzz test try that many inputs.
"""

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "30"))


def fuzz_settings(examples: int = FUZZ_EXAMPLES) -> settings:
    """Settings for a fuzz test: ``examples`` inputs, no deadline (the machine is shared), and
    no complaint about a function-scoped fixture (each example cleans up after itself)."""
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
