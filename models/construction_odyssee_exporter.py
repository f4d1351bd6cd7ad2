"""Push work orders and the master data they need to Odyssee.

Each pushed record is bound to its Odyssee GUID with a fingerprint of the
fields sent (``construction.external.id``): an unchanged record costs no call,
a changed one is updated in place (PUT), a new one is created (POST).
"""

from odoo import api, fields, models
from odoo.tools import html2plaintext

from ..protocols import odyssee_client
from ..protocols.external_ids import normalize


class ConstructionOdysseeExporter(models.AbstractModel):
    _name = "construction.odyssee.exporter"
    _description = "Odyssee exporter"

    @api.model
    def _push_pending(self, stream, client, call_log, auto_commit=False, deadline=None):
        """Send the requests queued for Odyssee; returns ``(sent, True)``.

        A request that fails is marked in error and the others go on; the run
        then raises, so the stream shows the failures.
        """
        backend = stream.backend_id
        requests = (
            self.env["maintenance.request"]
            .sudo()
            .search(
                [("company_id", "=", backend.company_id.id), ("odyssee_push_state", "=", "pending")]
            )
        )
        pushed, failures = 0, []
        try:
            self._push_products(backend, client)
        except odyssee_client.OdysseeError as exc:
            failures.append(f"products: {exc} {exc.body}")
        for request in requests:
            try:
                with self.env.cr.savepoint():
                    self._push_request(backend, client, request)
                pushed += 1
            except odyssee_client.OdysseeError as exc:
                request._set_odyssee_push_state("error", error=f"{exc} {exc.body}".strip())
                failures.append(f"{request.display_name}: {exc}")
            backend._write_call_log(call_log)
            if auto_commit:
                self.env.cr.commit()
        if failures:
            raise odyssee_client.OdysseeError("\n".join(failures))
        return pushed, True

    def _upsert(self, backend, client, record, controller, values):
        """POST or PUT ``values`` for ``record`` unless they are what was last sent."""
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        binding = Binder._binding(system, record)
        fingerprint = Binder._fingerprint(values)
        if binding and binding.fingerprint == fingerprint:
            return binding.external_id
        sent = {"fingerprint": fingerprint, "synced_at": fields.Datetime.now()}
        if binding:
            client.update(controller, binding.external_id, values)
            binding.write(sent)
            return binding.external_id
        guid = normalize(client.create(controller, values)["id"])
        Binder._bind(system, [(record, guid)], **sent)
        return guid

    def _push_company(self, backend, client, partner):
        partner = partner.commercial_partner_id
        return self._upsert(
            backend,
            client,
            partner,
            "Company",
            {
                "code": partner.ref or f"ODOO-{partner.id}",
                "name": (partner.name or "")[:64],
                "vat_reg_code": partner.vat or "",
                "phone": partner.phone or "",
                "email": partner.email or "",
                "street": partner.street or "",
                "zip": partner.zip or "",
                "city": partner.city or "",
                "db_country_code": partner.country_id.code or "",
                "is_client": True,
            },
        )

    def _push_machine(self, backend, client, equipment, customer):
        company_guid = self._push_company(backend, client, customer)
        return self._upsert(
            backend,
            client,
            equipment,
            "Project",
            {
                "name": equipment.name,
                "reference_back_office": f"EQ-{equipment.id}",
                "serial_number": equipment.serial_no or "",
                "company_id": company_guid,
            },
        )

    def _push_technician(self, backend, client, employee):
        return self._upsert(
            backend,
            client,
            employee,
            "User",
            {
                "code": f"EMP-{employee.id}",
                "username": employee.work_email or f"employee-{employee.id}",
                "firstname": "",
                "lastname": employee.name,
                "email": employee.work_email or "",
            },
        )

    def _push_products(self, backend, client):
        products = (
            self.env["product.product"]
            .sudo()
            .search(
                [
                    ("default_code", "!=", False),
                    ("sale_ok", "=", True),
                    ("company_id", "in", [backend.company_id.id, False]),
                ]
            )
        )
        for product in products:
            category = product.categ_id
            self._upsert(
                backend,
                client,
                category,
                "ArticleCategory",
                {"code": f"CAT-{category.id}", "name": (category.name or "")[:50]},
            )
            self._upsert(
                backend,
                client,
                product,
                "Article",
                {
                    "code": product.default_code[:50],
                    "name": (product.name or "")[:50],
                    "entered_price": product.lst_price,
                    "article_category_code": f"CAT-{category.id}",
                },
            )

    def _push_request(self, backend, client, request):
        equipment = request.equipment_id
        values = {
            "name": request.name[:255],
            "remark": html2plaintext(request.description or "")[:4000],
            "reference_back_office": request._odyssee_reference(),
            "job_type_code": backend.job_type_code or "REPAIR",
        }
        if equipment:
            customer = equipment.job_site_project_id.partner_id or backend.company_id.partner_id
            values["project_id"] = self._push_machine(backend, client, equipment, customer)
        employee = request.user_id.employee_ids[:1]
        if employee:
            self._push_technician(backend, client, employee)
        guid = self._upsert(backend, client, request, "Jobs", values)
        request._set_odyssee_push_state("sent")
        request.write(
            {
                "odyssee_last_synced_at": fields.Datetime.now(),
                "odyssee_status": request.odyssee_status or "Open",
            }
        )
        return guid
