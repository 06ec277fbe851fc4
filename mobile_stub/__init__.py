"""mobile_stub package."""
