"""What every token-server endpoint does first: find the caller's address and Authorization
header, and authenticate the client behind the failure throttle."""

from __future__ import annotations

from starlette.requests import Request

from gateway.config import Config
from gateway.errors import InvalidClient, InvalidRequest, TooManyRequests
from gateway.oauth.params import read_params
from gateway.oauth.throttle import Throttle
from gateway.pipeline.authn.client_auth import AuthenticatedClient, ClientAuthenticator
from gateway.pipeline.forward.headers import client_address


class ClientRequests:
    def __init__(self, config: Config, clients: ClientAuthenticator) -> None:
        self.config = config
        self.clients = clients
        self.throttle = Throttle(config.throttle.failures_per_client, config.throttle.failures_per_address)

    def address_of(self, request: Request) -> str:
        peer = request.scope.get("client")
        return client_address(
            request.scope["headers"], str(peer[0]) if peer else "-", self.config.trusted_proxies
        )

    @staticmethod
    def authorization_of(request: Request) -> str | None:
        values = request.headers.getlist("authorization")
        if len(values) > 1:
            raise InvalidRequest("more than one Authorization header")
        return values[0] if values else None

    def check_throttle(self, address: str, claimed: str | None) -> None:
        wait = self.throttle.retry_after(address, claimed)
        if wait is not None:
            raise TooManyRequests(wait)

    async def authenticate(
        self, request: Request, params: dict[str, str], required: bool
    ) -> AuthenticatedClient | None:
        """Client authentication behind the throttle; failures count against the address and the
        (claimed client, address) pair."""
        authorization = self.authorization_of(request)
        address = self.address_of(request)
        claimed = self.clients.claimed_client(params, authorization)
        self.check_throttle(address, claimed)
        try:
            found = await self.clients.authenticate(params, authorization)
        except InvalidClient:
            self.throttle.failed(address, claimed)
            raise
        if found is None and required:
            raise InvalidClient("client authentication is required")
        return found

    async def about_token(self, request: Request) -> tuple[AuthenticatedClient, str]:
        """An authenticated client and the `token` it asks about (introspection, revocation)."""
        params = await read_params(request)
        caller = await self.authenticate(request, params, required=True)
        assert caller is not None
        token_text = params.get("token")
        if not token_text:
            raise InvalidRequest("token: required")
        return caller, token_text
