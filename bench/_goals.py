"""The goals the issues set for each metric: (comparison, bound)."""

GOALS: dict[str, tuple[str, float]] = {
    "timeout_lookup_ratio_vs_dict": ("<=", 1.5),
    "reload_latency_p99_ms": ("<=", 30.0),
    "reload_idle_cpu_pct": ("<=", 0.5),
    # issue 12 raised the sessions goals ("do not regress"): 0.8 -> 0.95, 200k -> 250k
    "session_create_ratio_vs_raw_redis": (">=", 0.95),
    "session_touch_ratio_vs_raw_redis": (">=", 0.95),
    "agents_session_add_get_ratio_vs_sdk_redis": (">=", 1.0),
    "langgraph_put_get_ratio_vs_raw_redis": (">=", 0.7),
    "cleanup_expired_per_s": (">=", 250_000.0),
    "cleanup_scaling_ratio": ("<=", 1.25),
    "memory_estimate_error_pct": ("<=", 20.0),
    "reconcile_p99_ms": ("<=", 1000.0),
    "reconcile_apiserver_p99_ms": ("<=", 1000.0),
    "operator_rss_ratio_10k_foreign_configmaps": ("<=", 1.2),
    "local_edit_to_agent_p99_ms": ("<=", 500.0),
    "cr_to_agent_p99_ms": ("<=", 1000.0),
    # issue 22: timeouts sized from observed latency
    "timed_overhead_ns": ("<=", 1000.0),
    "recommend_error_pct": ("<=", 15.0),
    # 3 queries per tuned profile per round, a round every 300 s by default
    "tuning_queries_per_profile_hour": ("<=", 36.0),
    # issue 21: fleet scale on the real control plane
    "rollout_2000_pods_s": ("<=", 10.0),
    "status_writes_per_rollout_2000_pods": ("<=", 20.0),
    "cold_start_apiserver_2000_namespaces_s": ("<=", 60.0),
    "cr_to_agent_p99_ms_1000_watchers": ("<=", 1000.0),
    # the issue asks to report it and bound it: the watches' own traffic and one resync
    # round (a few paged lists) every 5 minutes; before the fix, 3 GETs per namespace a round
    "operator_idle_requests_per_min_2000_namespaces": ("<=", 60.0),
    "operator_rss_ratio_10k_pods": ("<=", 1.5),
}

RELATIVE_GOALS: dict[str, tuple[str, float, str]] = {
    # issue 21: with 10,000 agent pods, at most 1.5 x the same operator's idle RSS
    "operator_rss_mib_10k_pods": ("<=", 1.5, "operator_rss_idle_mib"),
}
"""Goals set against another metric of the same run: (comparison, factor, that metric)."""


def goal_of(name: str, metrics: dict[str, float] | None = None) -> tuple[str, float, str] | None:
    """(comparison, bound, how the goal reads) for ``name``, or None without a goal (or
    without the metric a relative goal is set against)."""
    if name in GOALS:
        op, bound = GOALS[name]
        return op, bound, f"{op} {bound:g}"
    if name in RELATIVE_GOALS and metrics and RELATIVE_GOALS[name][2] in metrics:
        op, factor, base = RELATIVE_GOALS[name]
        bound = factor * metrics[base]
        return op, bound, f"{op} {factor:g} x `{base}` ({bound:.3g})"
    return None
