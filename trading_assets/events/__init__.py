"""Market events: headlines turned into typed, deduplicated, universe-matched events."""
