"""The OAuth2 authorization server (contract §3): the token endpoint, introspection and
revocation, discovery, client secrets and registered public keys, signing key rotation."""
