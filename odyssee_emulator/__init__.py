"""A local emulator of the Odyssee ERP API, for the tests, the demo and the benchmarks.

Not part of the connector: standard library only, no ``odoo`` import. Run it
from the repository root with ``python -m odyssee_emulator --port 8765``.
"""

from .scenario import MIXED_CASE, SCENARIOS, populate
from .server import Emulator, Faults

__all__ = ["MIXED_CASE", "SCENARIOS", "Emulator", "Faults", "populate"]
