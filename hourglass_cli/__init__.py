"""The ``hourglass`` command line: thin adapters around agent_lib and the operator."""
