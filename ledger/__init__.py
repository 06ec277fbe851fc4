"""The jointly run ledger: one transparency log per region, witnessed and mirrored by
every other region. Sub-packages, each importing only the ones before it
(docs/architecture.md): log/ (pure primitives), node/ (storage, sequencer, HTTP app),
joint/ (witness, mirror), clients/ (reader, submit, sync, audit).
"""
