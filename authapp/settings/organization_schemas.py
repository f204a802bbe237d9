"""Bodies and answers of /api/v1/organizations and the membership changes around them
(docs/api.md "Organizations"); the pages load the same schemas from their forms."""

from __future__ import annotations

import copy

from marshmallow import Schema, fields, validate

from authapp.auth.schemas import Password
from authapp.settings.schemas import OrganizationOut, OrganizationPatchIn

# An id is looked up only when it is a canonical UUID (else 404, like an unknown one); the bound
# keeps a huge string out of the service and the audit trail.
ID_LENGTH = validate.Length(min=1, max=100)


def _organization_name() -> fields.Field:
    """PATCH /settings/organization's `name` (trimmed, 1 to 100 characters, no control
    characters), required here."""
    field = copy.deepcopy(OrganizationPatchIn._declared_fields["name"])
    field.required = True
    return field


class OrganizationIn(Schema):
    name = _organization_name()


class MyOrganizationOut(Schema):
    id = fields.String()
    name = fields.String()
    roles = fields.List(fields.String())
    is_active = fields.Boolean(metadata={"description": "The membership: false when suspended."})
    current = fields.Boolean(metadata={"description": "The organization this session acts in."})


class MyOrganizationListOut(Schema):
    organizations = fields.List(fields.Nested(MyOrganizationOut))


class CreatedOrganizationOut(OrganizationOut):
    roles = fields.List(fields.String(), metadata={"description": "The caller's: owner."})


class TransferIn(Schema):
    user_id = fields.String(required=True, validate=ID_LENGTH)


class OrganizationDeleteIn(Schema):
    password = Password(required=True)
