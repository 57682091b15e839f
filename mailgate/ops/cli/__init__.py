"""The `mailgate` command: `main.py` parses and dispatches, `command.py` loads each command's configuration and
owns the one error path, `exits.py` names the exit statuses. Each operator concern registers its own subcommands."""
