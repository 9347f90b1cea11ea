"""The request pipeline: match route → authenticate → authorize → mutate → forward.

The proxy (`gateway.proxy`) and the forward-auth decision endpoint (`gateway.decisions`) are two
front doors onto the same stages: `decide` runs them up to mutate for both; each stage is a small
module here with a small interface.
"""
