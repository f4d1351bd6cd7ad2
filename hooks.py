from odoo import fields

from .demo import telematics_history


def post_init_hook(env):
    """With demo data, give the demo source a week of history through the real pipeline."""
    source = env.ref("construction_asset_sync.demo_telematics_source", raise_if_not_found=False)
    if not source:
        return
    now = fields.Datetime.now().replace(minute=0, second=0, microsecond=0)
    Event = env["construction.telematics.event"]
    Event._receive_readings(source, telematics_history.readings(now), [])
    Event._receive_alerts(source, telematics_history.alerts(now))
    while Event._process_batch():
        pass
    # The week's daily utilisation, as the scheduled rollup would compute it.
    while env["construction.telematics.usage"]._rollup():
        pass
