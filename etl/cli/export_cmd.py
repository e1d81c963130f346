"""Commands of this group are registered in etl.cli through COMMANDS."""

COMMANDS: list = []
