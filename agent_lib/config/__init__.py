"""The spec models (the single source of truth for the CRDs) and the render core."""

from agent_lib.config.bundle import (
    CONFIG_KEY,
    CONFIGMAP_NAME,
    HASH_ANNOTATION,
    HourglassConfig,
    RenderedConfig,
    RenderError,
    parse_config,
    render_config,
)
from agent_lib.config.documents import SourceDocument, load_paths, load_text
from agent_lib.config.problems import Problem
from agent_lib.config.revision import REVISION_KEY, next_revision, parse_revision
from agent_lib.config.session_config import SessionPolicy, SessionPolicySpec
from agent_lib.config.specs import ParsedSpecs, parse_documents, parse_resource
from agent_lib.config.timeout_profiles import PollingSpec, TimeoutProfile, TimeoutProfileSpec

__all__ = [
    "CONFIGMAP_NAME",
    "CONFIG_KEY",
    "HASH_ANNOTATION",
    "REVISION_KEY",
    "HourglassConfig",
    "ParsedSpecs",
    "PollingSpec",
    "Problem",
    "RenderError",
    "RenderedConfig",
    "SessionPolicy",
    "SessionPolicySpec",
    "SourceDocument",
    "TimeoutProfile",
    "TimeoutProfileSpec",
    "load_paths",
    "load_text",
    "next_revision",
    "parse_config",
    "parse_documents",
    "parse_resource",
    "parse_revision",
    "render_config",
]
