"""Explicit state machines: each stateful model declares its allowed moves once.

In the manner of OCA queue_job's ``Job.set_*`` and edi_oca's exchange states:
a model has one method that changes its state, and that method asks its
``StateMachine`` whether a move is allowed. A move that is not in the table
raises ``InvalidStateTransition``, so a bug shows up at the first wrong write
instead of as a record stuck in a state nothing handles. No ``odoo`` import.
"""


class InvalidStateTransition(Exception):
    def __init__(self, machine, moves):
        self.machine = machine
        self.moves = sorted(moves, key=str)
        shown = ", ".join(f"{source!s} -> {target}" for source, target in self.moves[:5])
        super().__init__(f"{machine.name}: move not allowed: {shown}")


class StateMachine:
    """``transitions`` maps each state to the states it may move to.

    ``initial`` are the states a record may be created in.
    """

    def __init__(self, name, initial, transitions):
        self.name = name
        self.initial = frozenset(initial)
        self.transitions = {source: frozenset(targets) for source, targets in transitions.items()}
        unknown = set().union(*self.transitions.values()) - set(self.transitions)
        if unknown:
            raise ValueError(f"{name}: target states without an entry: {sorted(unknown)}")

    @property
    def states(self):
        return frozenset(self.transitions)

    def sources(self, target):
        """The states from which ``target`` may be reached."""
        return frozenset(
            source for source, targets in self.transitions.items() if target in targets
        )

    def allowed(self, source, target):
        if source is None:
            return target in self.initial
        return target in self.transitions.get(source, ())

    def check(self, moves):
        """Raise unless every ``(source, target)`` in ``moves`` is allowed."""
        refused = {(source, target) for source, target in moves if not self.allowed(source, target)}
        if refused:
            raise InvalidStateTransition(self, refused)


TELEMATICS_EVENT = StateMachine(
    "telematics event",
    initial={"pending", "rejected"},
    transitions={
        # Receipt stored it; processing takes it.
        "pending": {"processed", "unmapped", "failed", "dead", "pending"},
        "failed": {"processed", "unmapped", "failed", "dead", "pending"},
        # A mapping of its device (or a replay) queues it again.
        "unmapped": {"pending"},
        # An administrator replays it.
        "dead": {"pending"},
        "processed": {"pending"},
        # Invalid input stays as it was received, for inspection.
        "rejected": set(),
    },
)

ODYSSEE_PUSH = StateMachine(
    "Odyssee push of a request",
    initial={"none"},
    transitions={
        "none": {"pending"},
        "pending": {"pending", "sent", "error"},
        "sent": {"pending"},
        "error": {"pending"},
    },
)

ODYSSEE_STREAM = StateMachine(
    "Odyssee stream",
    initial={"ok"},
    transitions={
        # "attention": the run went through, but set records aside that a person
        # should look at (construction.odyssee.attention).
        "ok": {"ok", "attention", "error"},
        "attention": {"ok", "attention", "error"},
        "error": {"ok", "attention", "error"},
    },
)
