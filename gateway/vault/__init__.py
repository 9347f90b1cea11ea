"""The credentials vault (contract §8): connections to OAuth providers, users' refresh tokens
sealed under the master key, fresh access tokens for the services allowed to ask, and the login
flow that gets a refresh token in.

    (gateway.vault_models, in the foundation: the values and their validation, no I/O)
    provider  calls to a provider's token and revocation endpoints (httpx)
    service   the Vault: permission checks, caching, one refresh at a time, audit
    login     the PKCE login flow and its callback
    rotation  `gateway keys rotate-master`: everything sealed moves to the current master key

A layer with identity (gateway/__init__.py): imports the foundation, the store and
identity.grants; runtime, the admin API, the public callback, the console and the CLI import it.
"""
