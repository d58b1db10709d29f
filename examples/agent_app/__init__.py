"""A reference agent service migrated to agent_lib (see README.md)."""
