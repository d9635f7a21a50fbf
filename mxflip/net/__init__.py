"""Network clients of the core that share the probe's resolvers and ``connect`` rules."""
