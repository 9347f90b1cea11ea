"""The request pipeline: match route → authenticate → authorize → mutate → forward.

The proxy (`gateway.proxy`) and, later, the forward-auth decision endpoint are two front doors
onto the same stages; each stage is a small module here with a small interface.
"""
