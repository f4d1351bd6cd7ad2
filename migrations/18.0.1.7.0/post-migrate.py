"""After 18.0.1.7.0 loads: retained MQTT deliveries take the key of their own.

A retained delivery and the live delivery of the same message shared one
deduplication key, so a live alert that came after its retained copy was a
duplicate of a copy that raises nothing. Retained rows are now keyed
``retained:<key>``; the ones stored before get that key too, or a live alert
matching one of them would still be lost.
"""


def key_retained_deliveries_apart(cr):
    """Give the retained rows stored before the key of their own; returns how many."""
    cr.execute(
        """UPDATE construction_telematics_event
           SET dedupe_key = 'retained:' || dedupe_key
           WHERE retained AND dedupe_key NOT LIKE 'retained:%'"""
    )
    return cr.rowcount


def migrate(cr, version):
    if version:
        key_retained_deliveries_apart(cr)
