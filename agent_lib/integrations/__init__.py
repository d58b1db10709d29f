"""Drop-ins for agent frameworks, each behind its own extra.

- `agent_lib.integrations.openai_agents.HourglassSession` (``hourglass[openai-agents]``)
- `agent_lib.integrations.adk.HourglassSessionService` (``hourglass[adk]``)

Importing ``agent_lib`` imports neither framework; import the submodule you use.
"""
