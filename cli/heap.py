"""Short full garbage collections in the long-running commands (no model code).

A full collection of Python's cyclic garbage collector walks every tracked
object; with an Odoo registry loaded that is some 180,000 objects and about
90 ms (measured in the plans bench), and one came every two rounds of 20,000
readings, in the middle of whichever batch was running. The registry lives as
long as the process, so it is frozen (``gc.freeze``): collections then walk only
what batches allocate.
"""

import gc


def freeze_loaded():
    """Freeze what is loaded now, after a first full collection.

    Called again when the registry is replaced (a module was updated): the
    previous freeze is undone first, so that the old registry can be collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()
