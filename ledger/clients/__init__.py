"""Clients of a log: the one read interface and its bounded HTTP reader,
the writer's submit client, the stations' and issuers' sync client, and the outside
auditor.
"""
