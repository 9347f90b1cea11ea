"""A machine-to-machine authentication gateway: verifies service credentials, matches YAML route
policies, and forwards authorized requests to upstream APIs with identity headers."""

__version__ = "0.1.0"
