"""Pure domain: names, events, the engine, projection, policies. No I/O."""
