"""The issuer's admin side, one package: the permission model (`accounts`: roles,
permissions, `authorize`), account storage (`accounts_db`), its tables (`models`), the
service layer (`services`) and the operations both front ends share (`ops`), the
console pages (`views`) with their overview (`overview`, `charts`),
the login throttle (`login_guard`), the per-admin JSON API (`api`) and commands (`cli`).
`wiring.init_console(app)` plugs it into the issuer's Flask app. The hash-chained audit
log below it (issuer.audit, issuer.models.AdminAuditRecord) imports nothing from here.
This package file imports nothing, so importing one of its modules never drags in the
blueprints.
"""
