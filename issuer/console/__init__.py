"""The admin console of a regional issuer: web pages (server-rendered, usable without
JavaScript), the per-admin JSON API, and what both share.

`issuer.console.wiring.init_console(app)` wires it into the issuer's Flask app. This
package file imports nothing, so importing any of its modules (issuer.console.models,
issuer.console.accounts_db) never drags in the blueprints.
"""
