"""Route policies: the YAML rule files, compiled once into an immutable table (contract §4).

Imports the foundation only (errors, units, metrics)."""

from gateway.policy.loader import Policy, PolicyError, load_policy
from gateway.policy.model import Route, Upstream
from gateway.policy.table import Match, RouteTable

__all__ = ["Match", "Policy", "PolicyError", "Route", "RouteTable", "Upstream", "load_policy"]
