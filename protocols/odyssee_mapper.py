"""The mapper: Odyssee records as the values of our records, ids normalised.

Pure functions, no ``odoo`` import. Each returns the values of the Odoo
record's own fields, plus the external ids (``*_guid``, ``article_code``) that
the importer resolves through the binder. Odyssee has no NULLs: ``""``, ``0``,
``false``, the empty GUID and 1980-01-01 mean "not set" and map to False.
"""

from . import odata
from .external_ids import normalize


def _guid(value):
    key = normalize(value)
    return "" if key == odata.EMPTY_GUID else key


def _date(value):
    if not value or value.startswith("1980"):
        return False
    return odata.parse_timestamp(value).date()


def newest_timestamp(rows):
    """The highest ``modified_dateutc`` of ``rows`` in sortable form (None for no rows)."""
    return max((odata.normalize_timestamp(row["modified_dateutc"]) for row in rows), default=None)


def is_final_approval(row):
    """Approvals that close a job; daily ones sign work that a final one covers later."""
    return not row.get("is_daily_approval") and not row.get("ready_for_multi_approval")


def approval(row):
    return {
        "odyssee_guid": normalize(row["id"]),
        "job_guid": normalize(row["jobs_id"]),
        "modified_dateutc": odata.normalize_timestamp(row["modified_dateutc"]),
        "signed_by": row.get("contact_name") or False,
        "customer_remarks": row.get("customer_remarks") or False,
        "is_signed": bool(row.get("is_signed")),
        "rating": row.get("rating") or 0,
    }


def job(row):
    """What a job tells about its request; ``row`` None means Odyssee did not return it."""
    if row is None:
        return {"reference_back_office": False, "installation_guid": "", "status_guid": ""}
    return {
        "reference_back_office": row.get("reference_back_office") or False,
        "installation_guid": _guid(row.get("project_id")),
        # Resolved by code or name through the backend's catalogue (reference section 5.14).
        "status_guid": _guid(row.get("job_status_id")),
        "name": row.get("name") or False,
        "remark": row.get("remark") or False,
    }


def usage_line(kind, row):
    """A part (``JobPartUsage``) or time (``JobNonPartUsage``) line."""
    values = {
        "odyssee_guid": normalize(row["id"]),
        "kind": kind,
        "job_guid": normalize(row["jobs_id"]),
        "approval_guid": _guid(row.get("job_approval_id")),
        "user_guid": _guid(row.get("user_id")),
        "quantity": row.get("quantity") or 0.0,
        "price": row.get("price") or 0.0,
        "is_under_warranty": bool(row.get("is_under_warranty")),
        "working_date": _date(row.get("working_date")),
    }
    if kind == "part":
        code = row.get("code") or ""
        values.update(name=row.get("name") or code, code=code, article_code=code)
    else:
        values.update(
            name=row.get("description") or row.get("type_code") or "",
            code=row.get("line_code") or "",
            type_code=row.get("type_code") or "",
        )
    return values


def approval_file(row):
    return {
        "file_guid": normalize(row["id"]),
        "approval_guid": normalize(row["id_in_table"]),
        "file_name": row.get("file_name") or f"{row['id']}.pdf",
        "mimetype": row.get("mime_type") or "application/pdf",
        "modified_dateutc": odata.normalize_timestamp(row["modified_dateutc"]),
    }
