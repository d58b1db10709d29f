"""Examples of services built on agent_lib."""
