"""HealthBridge entry package: the one `healthbridge` command, configuration loading and
the demo orchestration. It holds no domain logic (that lives in `credential`, `ledger`,
`issuer`, `verifier` and `mobile_stub`)."""
