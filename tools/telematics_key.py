# Run inside `odoo-bin shell`: prints a new API key for a telematics source.
import os

name = os.environ.get("CAS_SOURCE_NAME") or "Demo telematics push"
source = env["construction.telematics.source"].search([("name", "=", name)], limit=1)  # noqa: F821
if source:
    print(f"API key of {name!r}: {source._issue_api_key()}")
    env.cr.commit()  # noqa: F821
else:
    print(f"no telematics source named {name!r}")
