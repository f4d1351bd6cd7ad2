"""The life of a machine's meters: replaced, rolled over, a reading corrected or voided.

The machine's counters (and the readings history) are life-to-date values. A
sender reports what its meter shows; processing adds the offset of the last
replacement or rollover before the reading's time (``_offsets``), so a new
hour meter starting at 0 continues the machine's total instead of going
backwards. Each event records who and why, and the maintenance plans are
evaluated again with the values that stand.
"""

from markupsafe import Markup
from odoo import api, fields, models
from odoo.exceptions import UserError

METERS = [("engine_hours", "Engine hours"), ("odometer_km", "Odometer (km)")]
STAMP = {"engine_hours": "engine_hours_at", "odometer_km": "odometer_at"}


class ConstructionMeterEvent(models.Model):
    _name = "construction.meter.event"
    _description = "Meter event"
    _order = "at desc, id desc"

    equipment_id = fields.Many2one(
        "maintenance.equipment", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="equipment_id.company_id", store=True)
    kind = fields.Selection(
        [
            ("replacement", "Meter replaced"),
            ("rollover", "Meter rolled over"),
            ("correction", "Reading corrected"),
            ("void", "Reading voided"),
        ],
        required=True,
    )
    meter = fields.Selection(METERS, required=True, default="engine_hours")
    at = fields.Datetime(
        string="When", required=True, default=fields.Datetime.now, help="When the meter changed."
    )
    reading_id = fields.Many2one(
        "construction.telematics.reading", string="Reading", ondelete="set null"
    )
    old_value = fields.Float(
        string="Old value",
        help="Replacement or rollover: the last value the outgoing meter showed. "
        "Correction or void: the value the reading had (filled in).",
    )
    new_value = fields.Float(
        string="New value",
        help="Replacement or rollover: what the incoming meter shows (0 for a new unit). "
        "Correction: the right life-to-date value.",
    )
    meter_offset = fields.Float(
        readonly=True, help="Added to what the meter shows from this time on (life-to-date)."
    )
    reason = fields.Text(required=True)
    user_id = fields.Many2one(
        "res.users", string="By", required=True, default=lambda self: self.env.user, readonly=True
    )

    @api.model_create_multi
    def create(self, vals_list):
        events = super().create(vals_list)
        for event in events:
            event._apply()
        events.equipment_id.flush_recordset()
        self.env["construction.maintenance.schedule"]._evaluate(events.equipment_id.ids)
        return events

    def write(self, vals):
        raise UserError(self.env._("Meter events are a record: add a new event instead."))

    def _apply(self):
        self.ensure_one()
        equipment = self.equipment_id
        self.env.cr.execute(
            "SELECT id FROM maintenance_equipment WHERE id = %s FOR NO KEY UPDATE", [equipment.id]
        )
        if self.kind in ("replacement", "rollover"):
            previous = self.sudo().search(
                [
                    ("equipment_id", "=", equipment.id),
                    ("meter", "=", self.meter),
                    ("kind", "in", ("replacement", "rollover")),
                    ("at", "<=", self.at),
                    ("id", "!=", self.id),
                ],
                limit=1,
            )
            offset = previous.meter_offset + self.old_value - self.new_value
            super().write({"meter_offset": offset})
            summary = self.env._(
                "%(kind)s (%(meter)s) at %(when)s: old meter %(old)s, new meter %(new)s; "
                "life-to-date continues from %(total)s. Reason: %(reason)s",
                kind=self._label("kind"),
                meter=self._label("meter"),
                when=fields.Datetime.to_string(self.at),
                old=f"{self.old_value:g}",
                new=f"{self.new_value:g}",
                total=f"{offset + self.new_value:g}",
                reason=self.reason,
            )
        else:
            summary = self._apply_to_reading()
        equipment.message_post(
            body=Markup("<p>%s</p>") % summary,
            subtype_xmlid="mail.mt_note",
            author_id=self.user_id.partner_id.id,
        )

    def _apply_to_reading(self):
        reading = self.reading_id
        if not reading or reading.equipment_id != self.equipment_id:
            raise UserError(self.env._("Choose a reading of this machine to correct or void."))
        column = self.meter
        self.env.cr.execute(
            f"SELECT {column} FROM construction_telematics_reading WHERE id = %s", [reading.id]
        )
        old = self.env.cr.fetchone()[0]
        if self.kind == "correction":
            self.env.cr.execute(
                f"""UPDATE construction_telematics_reading
                    SET {column} = %s, suspect = FALSE, suspect_reason = %s WHERE id = %s""",
                [self.new_value, self.env._("corrected: %s", self.reason)[:255], reading.id],
            )
        else:
            self.env.cr.execute(
                """UPDATE construction_telematics_reading
                   SET suspect = TRUE, suspect_reason = %s WHERE id = %s""",
                [self.env._("voided: %s", self.reason)[:255], reading.id],
            )
        super().write({"old_value": old or 0.0})
        self.env["construction.telematics.reading"].invalidate_model()
        self._restate_counter()
        return self.env._(
            "%(kind)s (%(meter)s) of %(when)s: %(old)s%(new)s. Reason: %(reason)s",
            kind=self._label("kind"),
            meter=self._label("meter"),
            when=fields.Datetime.to_string(reading.at),
            old=f"{old or 0:g}",
            new=f" → {self.new_value:g}" if self.kind == "correction" else "",
            reason=self.reason,
        )

    def _restate_counter(self):
        """The machine's counter is the latest plausible reading that stands."""
        column, stamp = self.meter, STAMP[self.meter]
        self.env.cr.execute(
            f"""SELECT {column}, at FROM construction_telematics_reading
                WHERE equipment_id = %s AND {column} IS NOT NULL AND suspect IS NOT TRUE
                ORDER BY at DESC LIMIT 1""",
            [self.equipment_id.id],
        )
        row = self.env.cr.fetchone()
        value, at = row if row else (None, None)
        self.env.cr.execute(
            f"UPDATE maintenance_equipment SET {column} = %s, {stamp} = %s WHERE id = %s",
            [value, at, self.equipment_id.id],
        )
        self.env["maintenance.equipment"].invalidate_model([column, stamp])

    def _label(self, field):
        return dict(self._fields[field]._description_selection(self.env))[self[field]]

    @api.model
    def _offsets(self, equipment_ids):
        """{equipment_id: {meter: [(at, offset), ...] by time}} of replacements and rollovers."""
        self.env.cr.execute(
            """SELECT equipment_id, meter, at, meter_offset FROM construction_meter_event
               WHERE equipment_id = ANY(%s) AND kind IN ('replacement', 'rollover')
               ORDER BY at, id""",
            [list(equipment_ids)],
        )
        found = {}
        for equipment_id, meter, at, offset in self.env.cr.fetchall():
            found.setdefault(equipment_id, {}).setdefault(meter, []).append((at, offset))
        return found
