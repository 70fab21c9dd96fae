"""External coding agents (Claude Code, Codex CLI, Gemini CLI, aider, any command) as engines.

`spec` reads an agent file's `engine:` section, `catalog` knows each engine's package, flags
and environment, `install` puts a pinned engine into SOMAS's tool folder, `runner` runs it in
a scratch worktree and returns a typed `EngineOutcome` with the diff, `mcp_tools` offers
SOMAS's repository tools to engines that speak MCP.
"""
