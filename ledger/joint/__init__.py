"""Joint operation: each node witnesses (C2SP tlog-witness) and mirrors
(C2SP tlog-mirror) every other member's log, and collects cosignatures; the HTTP API
for both.
"""
