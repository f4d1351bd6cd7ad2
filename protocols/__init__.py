"""Protocol code that needs no ORM: payload parsers, signatures, API clients.

Nothing in this package imports ``odoo``; it is tested without a database.
"""
