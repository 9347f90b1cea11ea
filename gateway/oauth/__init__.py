"""The OAuth2 authorization server's front door (contract §3): the token endpoint,
introspection and revocation.

A front door: imports the runtime, the pipeline (client authentication), the identity services
(tokens, secrets) and below. What it builds on lives lower down so the pipeline can use it too:
gateway tokens in `identity.tokens`, key rotation in `identity.rotation`, client secrets in
`identity.secrets`, client authentication in `pipeline.authn.client_auth`."""
