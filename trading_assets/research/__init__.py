"""Research layer: the bull/bear debate and the judge (pure functions; assets wire them)."""
