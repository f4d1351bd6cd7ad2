"""PostgreSQL settings changed for one statement of a transaction (no ``odoo`` import)."""

from contextlib import contextmanager


@contextmanager
def without_jit(cr):
    """Run the statements of the block without PostgreSQL's JIT compilation.

    For short statements that the planner overestimates: past ``jit_above_cost``
    PostgreSQL compiles a plan before running it, about 15 ms, which a statement
    of a few milliseconds run after every telematics batch never earns back. The
    setting is local to the transaction and put back as it was after the block;
    when the block raises, the transaction's rollback puts it back.
    """
    cr.execute("SELECT current_setting('jit'), set_config('jit', 'off', true)")
    previous = cr.fetchone()[0]
    yield
    cr.execute("SELECT set_config('jit', %s, true)", [previous])
