"""A machine-to-machine authentication gateway: verifies service credentials, matches YAML route
policies, and forwards authorized requests to upstream APIs with identity headers.

Dependencies point one way, down this list; a module imports from its own layer or below,
never above (tests/unit/test_layers.py holds the table and checks it):

    cli                      the `gateway` command
    server, supervisor       processes, listeners, the worker supervisor
    console, http1           the web console (on the admin API's actions); the public
                               listener's HTTP/1.1 server
    proxy, decisions,        front doors: the reverse proxy, the forward-auth decision
      admin, oauth, web, …     endpoint, the admin API and discovery, the token endpoint;
                               all read one Runtime
    runtime                  what one worker holds: config, policy, identity services
    pipeline                 authn → authz → forward stages
    identity, vault          directory (caches + change feed), grants, signing keys, tokens;
                               the credentials vault (connections, users' tokens, login flow)
    policy                   route policies compiled into an immutable table
    store                    persistence of the models, one interface over SQLite/PostgreSQL
    models, errors, config,  foundation: plain values, the exception tree, settings, crypto
      crypto, presented, …     helpers; nothing gateway-specific above them

`gateway.client` is the library for callers and upstreams: it uses the foundation only.
"""

__version__ = "0.1.0"
