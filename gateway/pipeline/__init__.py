"""The request pipeline: match route → authenticate → authorize → mutate → forward.

The proxy (`gateway.proxy`) and the forward-auth decision endpoint (`gateway.decisions`) are two
front doors onto the same stages: `decide` runs them up to mutate for both; each stage is a small
module here with a small interface.

Imports the identity services, the policy model, `gateway.models` and the foundation; never the
runtime or a front door (proxy, decisions, admin, oauth), which import this.
"""
