"""Scenario files: schema, YAML reading, ``--set`` overrides, validation."""
