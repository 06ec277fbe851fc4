"""The admin console of a regional issuer: web pages, their store and operations."""
