"""Push work orders and the master data they need to Odyssee.

Each pushed record is bound to its Odyssee GUID with a fingerprint of the
fields sent (``construction.external.id``): an unchanged record costs no call,
a changed one is updated in place (PUT). A record without a binding is first
looked up by its ERP key (``code`` or ``reference_back_office``, reference §3:
the API has no upsert), and adopted when the tenant has it. Otherwise it is
created with a GUID we choose, bound (*pending*) and committed before the POST:
a lost answer, a retry or a crash ends in a 409 that adopts the record, never
in a second one.
"""

import logging
import uuid

from odoo import api, fields, models
from odoo.exceptions import UserError
from odoo.tools import html2plaintext

from ..protocols.external_ids import normalize
from ..protocols.odyssee_adapter import (
    default_installation_status,
    default_job_type,
    find_by_key,
    find_by_keys,
)
from ..protocols.odyssee_client import OdysseeError

_logger = logging.getLogger(__name__)

# The ERP key of each controller the connector writes.
ERP_KEYS = {
    "Company": "code",
    "Project": "reference_back_office",
    "User": "code",
    "ArticleCategory": "code",
    "Article": "code",
    "Jobs": "reference_back_office",
}


def _memo(compute):
    """``compute`` run once: later calls give its result, or raise its error again."""
    outcome = []

    def once():
        if not outcome:
            try:
                outcome.append((True, compute()))
            except Exception as exc:
                outcome.append((False, exc))
        succeeded, value = outcome[0]
        if not succeeded:
            raise value
        return value

    return once


def _in_sync(binding, fingerprint):
    """Whether Odyssee holds, for ``binding``'s record, the values of ``fingerprint``."""
    return bool(binding) and not binding.pending and binding.fingerprint == fingerprint


class ConstructionOdysseeExporter(models.AbstractModel):
    _name = "construction.odyssee.exporter"
    _description = "Odyssee exporter"

    @api.model
    def _push_pending(self, stream, client, call_log, auto_commit=False, deadline=None):
        """Send the products in the backend's domain and the queued requests.

        Returns ``({"new": sent, "error": …}, True)``: a request or product that
        fails is marked (the request in error) and the others go on.
        """
        self = self.with_context(odyssee_auto_commit=auto_commit)
        backend = stream.backend_id
        requests = (
            self.env["maintenance.request"]
            .sudo()
            .search(
                [("company_id", "=", backend.company_id.id), ("odyssee_push_state", "=", "pending")]
            )
        )
        pushed, failures = 0, []
        job_type = _memo(lambda: self._job_type(backend, client))
        pushes, sent = self._products_changed(backend, backend._products_to_push())
        tenant_rows = self._tenant_rows_of_new(client, pushes, sent)
        # Each record is read on its own (``with_prefetch()``): after each commit
        # clears the cache, a field read on one would be fetched for the whole run.
        for product, *values in pushes:
            product = product.with_prefetch()
            error = self._isolated(
                backend,
                call_log,
                auto_commit,
                self._push_product,
                client,
                product,
                *values,
                tenant_rows,
            )
            if error:
                failures.append(f"{product.display_name}: {error}")
        # Jobs do not name their technician's user: a user Odyssee refuses is said
        # on its own, each run until it is made, and keeps no job from going out.
        for employee in self._technicians_to_push(backend, requests):
            employee = employee.with_prefetch()
            error = self._isolated(
                backend, call_log, auto_commit, self._push_technician, client, employee
            )
            if error:
                failures.append(
                    self.env._(
                        "Technician %(name)s (Odyssee user): %(error)s",
                        name=employee.display_name,
                        error=error,
                    )
                )
        for request in requests:
            request = request.with_prefetch()
            error = self._isolated(
                backend, call_log, auto_commit, self._push_request, client, request, job_type
            )
            if error:
                request._set_odyssee_push_state("error", error=error)
                failures.append(f"{request.display_name}: {error}")
            else:
                pushed += 1
            if auto_commit:
                self.env.cr.commit()
        return {"new": pushed, "error": "\n".join(failures) or False}, True

    def _technicians_to_push(self, backend, requests):
        """The employees whose Odyssee user a run makes sure of, each once.

        Those of the queued ``requests``, and those of requests already sent whom
        Odyssee has no user of yet (their creation was refused: tried again).
        """
        Request = self.env["maintenance.request"].sudo()
        sent_users = Request._read_group(
            [
                ("company_id", "=", backend.company_id.id),
                ("odyssee_push_state", "=", "sent"),
                ("user_id", "!=", False),
            ],
            ["user_id"],
        )
        queued = self._first_employees(requests.user_id)
        others = self._first_employees(
            self.env["res.users"].union(*(user for (user,) in sent_users)) - requests.user_id
        )
        bindings = self.env["construction.external.id"]._to_bindings(
            backend.external_system_id, others
        )
        made = {binding.res_id for binding in bindings if not binding.pending}
        return queued | others.filtered(lambda employee: employee.id not in made)

    def _first_employees(self, users):
        """The employee of each user (their first, as a request's technician is)."""
        return self.env["hr.employee"].union(*(user.employee_ids[:1] for user in users))

    def _isolated(self, backend, call_log, auto_commit, method, *args):
        """Run ``method(backend, *args)`` alone: its failure is returned, not raised."""
        from .construction_odyssee_stream import describe

        try:
            if auto_commit:
                method(backend, *args)
                self.env.cr.commit()
            else:
                with self.env.cr.savepoint():
                    method(backend, *args)
        except Exception as exc:
            if auto_commit:
                self.env.cr.rollback()
            return describe(exc)
        finally:
            backend._write_call_log(call_log)
        return False

    def _upsert(
        self,
        backend,
        client,
        record,
        controller,
        values,
        create_values=None,
        update=True,
        tenant_rows=None,
    ):
        """Make Odyssee hold ``values`` for ``record``; returns ``(guid, what was done)``.

        What was done: False (unchanged), "updated", "adopted" or "created".
        ``create_values``: a callable giving what a POST adds to ``values`` (what
        a new record must have, which an update must leave as Odyssee has it).
        ``update=False``: a record Odyssee has is Odyssee's; it is bound, never
        written (``values`` are sent only to create a missing one).
        ``tenant_rows``: ``{ERP key: rows}`` looked up already for this
        ``controller`` (``find_by_keys``); a key it lacks is looked up here. What
        this run creates is added, so that a second record with the same key
        adopts it as a lookup would.
        """
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        binding = Binder._binding(system, record)
        fingerprint = Binder._fingerprint(values)
        settled = binding and not binding.pending
        if _in_sync(binding, fingerprint) or (settled and not update):
            return binding.external_id, False
        sent = {"fingerprint": fingerprint, "synced_at": fields.Datetime.now(), "pending": False}
        if settled:
            client.update(controller, binding.external_id, values)
            binding.write(sent)
            return binding.external_id, "updated"
        key_field = ERP_KEYS[controller]
        key = values[key_field]
        if not binding:
            if tenant_rows is not None and key in tenant_rows:
                found = tenant_rows[key]
            else:
                found = find_by_key(client, controller, key_field, key)
            if found:  # the tenant has it already: adopt it, then send our values
                guid = normalize(found[0]["id"])
                if not update:
                    Binder._bind(system, [(record, guid)], **sent)
                    return guid, "adopted"
                # Bound first: an Odyssee record Odoo has bound to another record is
                # refused before our values overwrite it.
                binding = Binder._bind(system, [(record, guid)], pending=True)
                client.update(controller, guid, values)
                binding.write(sent)
                return guid, "adopted"
            binding = Binder._bind(system, [(record, str(uuid.uuid4()))], pending=True)
            if self.env.context.get("odyssee_auto_commit"):
                self.env.cr.commit()  # the intent survives a crash during the POST
        if tenant_rows is not None:
            # Whatever the POST ends in, the next record with this key looks again.
            tenant_rows.pop(key, None)
        extra = create_values() if create_values else {}
        created = client.create(controller, dict(values, id=binding.external_id, **extra))
        if created.get("@adopted") and update:  # an earlier attempt created it: make it current
            client.update(controller, binding.external_id, values)
        binding.write(sent)
        if tenant_rows is not None:
            tenant_rows[key] = [{"id": binding.external_id, key_field: key}]
        return binding.external_id, "created"

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
        )[0]

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
            create_values=lambda: {"project_status_id": self._new_installation_status(client)},
        )[0]

    def _new_installation_status(self, client):
        status = default_installation_status(client)
        if not status:
            raise UserError(
                self.env._(
                    "Odyssee has no open installation status (ProjectStatus) to give a new "
                    "installation: open one, or make one the default, in Odyssee."
                )
            )
        return status

    def _push_technician(self, backend, client, employee):
        """Create the technician's user when Odyssee has none; never rewrite one it has.

        A user is a person signing in to the mobile app: their user name and
        names are Odyssee's once the user exists (and a ``PUT`` may replace the
        whole entity, reference section 7 Q11), so an existing user is only bound.
        """
        firstname, _space, lastname = (employee.name or "").strip().partition(" ")
        return self._upsert(
            backend,
            client,
            employee,
            "User",
            {
                "code": f"EMP-{employee.id}",
                "username": employee.work_email or f"employee-{employee.id}",
                "firstname": firstname if lastname else "",
                "lastname": lastname or firstname,
                "email": employee.work_email or "",
            },
            update=False,
        )[0]

    def _push_product(
        self, backend, client, product, category_values, article_values, tenant_rows=None
    ):
        tenant_rows = tenant_rows or {}
        self._upsert(
            backend,
            client,
            product.categ_id,
            "ArticleCategory",
            category_values,
            tenant_rows=tenant_rows.get("ArticleCategory"),
        )
        self._upsert(
            backend,
            client,
            product,
            "Article",
            article_values,
            tenant_rows=tenant_rows.get("Article"),
        )

    def _tenant_rows_of_new(self, client, pushes, sent):
        """The tenant's articles and categories with the codes of those ``pushes``
        never sent (no binding in ``sent``, as ``_products_changed`` gives it):
        ``{controller: {code: rows}}``, a page of codes to a call.

        Looked up one by one, a new backend's first run would cost a call per
        product before any write. A lookup that fails leaves its products to
        their own lookup, which fails or not for each product on its own.
        """
        codes = {"ArticleCategory": set(), "Article": set()}
        for product, category_values, article_values in pushes:
            if ("product.category", product.categ_id.id) not in sent:
                codes["ArticleCategory"].add(category_values["code"])
            if ("product.product", product.id) not in sent:
                codes["Article"].add(article_values["code"])
        tenant_rows = {}
        for controller, wanted in codes.items():
            if wanted:
                try:
                    tenant_rows[controller] = find_by_keys(
                        client, controller, ERP_KEYS[controller], wanted
                    )
                except OdysseeError as exc:
                    from .construction_odyssee_stream import describe

                    _logger.warning(
                        "Odyssee %s: looking up %d codes at once failed (%s); "
                        "each is looked up on its own",
                        controller,
                        len(wanted),
                        describe(exc),
                    )
        return tenant_rows

    @staticmethod
    def _category_values(category):
        return {"code": f"CAT-{category.id}", "name": (category.name or "")[:50]}

    @staticmethod
    def _article_values(product):
        return {
            "code": product.default_code[:50],
            "name": (product.name or "")[:50],
            "entered_price": product.lst_price,
            "article_category_code": f"CAT-{product.categ_id.id}",
        }

    def _products_changed(self, backend, products):
        """``(product, category values, article values)`` of the ``products`` whose
        article or category Odyssee does not hold as Odoo has it, and the bindings
        of the products and categories, ``{(model, id): binding}``.

        Every sync run goes through the whole product domain. The values are read
        here for all products at once: read after each product's commit, a price
        would be computed again for every product of the run each time (its
        prefetch), and only the changed products are then pushed one by one.
        """
        Binder = self.env["construction.external.id"]
        system = backend.external_system_id
        sent = {}
        for binding in Binder._to_bindings(system, products) | Binder._to_bindings(
            system, products.categ_id
        ):
            sent.setdefault((binding.res_model, binding.res_id), binding)  # oldest first

        def changed(record, values):
            binding = sent.get((record._name, record.id))
            return not _in_sync(binding, Binder._fingerprint(values))

        pushes = []
        for product in products:
            category_values = self._category_values(product.categ_id)
            article_values = self._article_values(product)
            if changed(product.categ_id, category_values) or changed(product, article_values):
                pushes.append((product, category_values, article_values))
        return pushes, sent

    def _job_type(self, backend, client):
        """What names a pushed job's type: the backend's code, else the tenant's default."""
        if backend.job_type_code:
            return {"job_type_code": backend.job_type_code}
        guid = default_job_type(client)
        if not guid:
            raise UserError(
                self.env._(
                    "Odyssee has no default job type for new jobs: mark one as default in "
                    "Odyssee, or set the ERP code of a job type on the backend (Job type code)."
                )
            )
        return {"job_type_id": guid}

    def _push_request(self, backend, client, request, job_type):
        """Send ``request`` as a job; ``job_type()`` gives the fields naming its type.

        The type is sent when the job is created only: an update leaves it as
        Odyssee has it, where a dispatcher may have changed it.
        """
        equipment = request.equipment_id
        values = {
            "name": request.name[:255],
            "remark": html2plaintext(request.description or "")[:4000],
            "reference_back_office": request._odyssee_reference(),
        }
        if equipment:
            customer = equipment.job_site_project_id.partner_id or backend.company_id.partner_id
            values["project_id"] = self._push_machine(backend, client, equipment, customer)
        guid, done = self._upsert(backend, client, request, "Jobs", values, create_values=job_type)
        if done:
            request._message_log(
                body={
                    "created": self.env._("Sent to Odyssee: job created."),
                    "adopted": self.env._("Sent to Odyssee: linked to its existing job."),
                    "updated": self.env._("Sent to Odyssee: job updated."),
                }[done]
            )
        request._set_odyssee_push_state("sent")
        request.write(
            {
                "odyssee_last_synced_at": fields.Datetime.now(),
                "odyssee_status": request.odyssee_status or "Open",
            }
        )
        return guid
