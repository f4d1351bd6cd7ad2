from odoo import api, fields, models
from odoo.exceptions import ValidationError

from ..protocols import geofence


class ProjectProject(models.Model):
    """A job site's geofence: where its machines are seen to arrive and leave."""

    _inherit = "project.project"

    geofence_kind = fields.Selection(
        [("none", "None"), ("circle", "Circle"), ("polygon", "Polygon")],
        string="Geofence",
        default="none",
        required=True,
    )
    geofence_latitude = fields.Float(string="Centre latitude", digits=(10, 7))
    geofence_longitude = fields.Float(string="Centre longitude", digits=(10, 7))
    geofence_radius_m = fields.Float(string="Radius (m)", default=200.0)
    geofence_polygon = fields.Text(
        string="Polygon",
        help="The corners as JSON, [[latitude, longitude], ...], e.g. "
        "[[48.871, 2.350], [48.872, 2.352], [48.870, 2.353]].",
    )
    site_visit_ids = fields.One2many(
        "construction.telematics.site.visit", "project_id", string="Machine visits"
    )

    @api.constrains(
        "geofence_kind",
        "geofence_latitude",
        "geofence_longitude",
        "geofence_radius_m",
        "geofence_polygon",
    )
    def _check_geofence(self):
        for project in self:
            try:
                project._geofence()
            except geofence.FenceError as error:
                label = self._fields[error.field].get_description(self.env)["string"]
                raise ValidationError(
                    self.env._(
                        "%(site)s: the geofence's %(field)s is invalid: %(error)s",
                        site=project.display_name,
                        field=label,
                        error=str(error).split(": ", 1)[1],
                    )
                ) from None

    def _geofence(self):
        """The project's fence for ``protocols.geofence``, or None."""
        self.ensure_one()
        if self.geofence_kind == "circle":
            lat, lon = self.geofence_latitude, self.geofence_longitude
            geofence.check_position("geofence_latitude", lat, lon)
            if not 0 < self.geofence_radius_m <= 100_000:
                raise geofence.FenceError("geofence_radius_m", "between 0 and 100,000 m")
            return geofence.Fence(self.id, "circle", (lat, lon), self.geofence_radius_m, None)
        if self.geofence_kind == "polygon":
            vertices = geofence.parse_polygon(self.geofence_polygon)
            return geofence.Fence(self.id, "polygon", None, None, vertices)
        return None
