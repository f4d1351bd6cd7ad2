"""What the long-running commands (``telematics_worker``, ``telematics_mqtt``) share.

Each serves one database for as long as it runs, with the registry loaded once
and reloaded when a module is updated. A full collection of Python's cyclic
garbage collector walks every tracked object; with an Odoo registry loaded that
is some 180,000 objects and about 90 ms (measured in the plans bench), one
every two rounds of 20,000 readings, in the middle of whichever batch was
running. The registry lives as long as the process, so it is frozen
(``gc.freeze``): collections then walk only what batches allocate.
"""

import gc

from odoo.modules.registry import Registry
from odoo.tools import config


def single_database(command, odoo_args):
    """Parse Odoo's options; the one database they name (``-d``), else exit."""
    config.parse_config(odoo_args, setup_logging=True)
    databases = config["db_name"].split(",") if config["db_name"] else []
    if len(databases) != 1:
        raise SystemExit(f"{command}: give exactly one database with -d")
    return databases[0]


def load_registry(dbname):
    registry = Registry(dbname)
    freeze_loaded()
    return registry


def refreshed_registry(registry):
    """``registry``, or the one that replaces it after a module update (frozen in turn)."""
    current = registry.check_signaling()
    if current is not registry:
        freeze_loaded()
    return current


def freeze_loaded():
    """Freeze what is loaded now, after a first full collection; undo the previous
    freeze first, so that a replaced registry can be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
