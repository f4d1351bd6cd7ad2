"""Push work orders and the master data they need to Odyssee.

Each pushed record keeps its Odyssee GUID and a fingerprint of the fields sent
(``construction.odyssee.sync.state``): an unchanged record costs no call, a
changed one is updated in place (PUT), a new one is created (POST).
"""

import logging

from odoo import api, fields, models
from odoo.tools import html2plaintext

from ..protocols import odyssee_client

_logger = logging.getLogger(__name__)


class ConstructionOdysseeExporter(models.AbstractModel):
    _name = "construction.odyssee.exporter"
    _description = "Odyssee exporter"

    @api.model
    def _push_pending(self, backend, auto_commit=False):
        stream = backend.stream_ids.filtered(lambda s: s.kind == "push")
        requests = (
            self.env["maintenance.request"]
            .sudo()
            .search(
                [("company_id", "=", backend.company_id.id), ("odyssee_push_state", "=", "pending")]
            )
        )
        client = backend._client()
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
                request.write(
                    {
                        "odyssee_push_state": "error",
                        "odyssee_push_error": f"{exc} {exc.body}".strip(),
                    }
                )
                failures.append(f"{request.display_name}: {exc}")
            backend._flush_call_log(client)
            if auto_commit:
                self.env.cr.commit()
        backend._flush_call_log(client)
        if failures:
            stream._record_failure("\n".join(failures), client.calls)
        else:
            stream._record_success(pushed, client.calls)
        return pushed

    def _upsert(self, backend, client, record, controller, values):
        """POST or PUT ``values`` for ``record`` unless they are what was last sent."""
        State = self.env["construction.odyssee.sync.state"].sudo()
        state = State._get(backend, record)
        fingerprint = State._fingerprint(values)
        if state and state.fingerprint == fingerprint:
            return state.odyssee_guid
        if state:
            client.update(controller, state.odyssee_guid, values)
            state.write({"fingerprint": fingerprint, "synced_at": fields.Datetime.now()})
            return state.odyssee_guid
        guid = client.create(controller, values)["id"].lower()
        State.create(
            {
                "backend_id": backend.id,
                "res_model": record._name,
                "res_id": record.id,
                "controller": controller,
                "odyssee_guid": guid,
                "fingerprint": fingerprint,
                "synced_at": fields.Datetime.now(),
            }
        )
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
        guid = self._upsert(
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
        if equipment.odyssee_installation_guid != guid:
            equipment.sudo().odyssee_installation_guid = guid
        return guid

    def _push_technician(self, backend, client, employee):
        guid = self._upsert(
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
        if (employee.odyssee_user_guid or "").lower() != guid:
            employee.sudo().odyssee_user_guid = guid
        return guid

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
        request.write(
            {
                "odyssee_job_guid": guid,
                "odyssee_push_state": "sent",
                "odyssee_push_error": False,
                "odyssee_last_synced_at": fields.Datetime.now(),
                "odyssee_status": request.odyssee_status or "Open",
            }
        )
        return guid
