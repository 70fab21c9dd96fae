"""Running projects: the runner, stage handlers, debugger, operator, notifications."""
