"""The Hourglass operator: TimeoutProfiles and SessionPolicies reconciled into live config.

kopf handlers (`handlers`) are thin adapters; the decisions are pure functions
(`reconcile`, `cronjob`, `status`) over the same render core `hourglass render` uses.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
