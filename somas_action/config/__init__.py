"""Loading and validating config.yml, agent files and our JSON Schemas."""
