"""The operator's login hands kopf the same session for the same credentials, so that
kopf's own vault can tell credentials the API server refused from new ones."""

from __future__ import annotations

import asyncio

import kopf
import pytest
from kopf._cogs.structs.credentials import Vault, VaultKey

from kubetune.controller.login import Sessions

KEY = VaultKey("login")
REVOKED = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="revoked")


async def _refused_then_logged_in_again(sessions: Sessions, again: kopf.ConnectionInfo) -> None:
    """What kopf does on a 401: drop the credentials, log in again, and raise
    ``LoginError`` in the caller if that login brought only refused ones."""
    vault = Vault()
    first = sessions.for_credentials(REVOKED, 4)
    await vault.populate({KEY: first})

    async def login_again() -> None:
        while vault._ready:  # until the 401 has dropped the credentials
            await asyncio.sleep(0.01)
        await vault.populate({KEY: sessions.for_credentials(again, 4)})

    relogin = asyncio.create_task(login_again())
    try:
        await vault.invalidate(KEY, first, exc=RuntimeError("401 Unauthorized"))
    finally:
        await relogin
        for made in {first, sessions.for_credentials(again, 4)}:
            await made.aiohttp_session.close()


def test_the_same_refused_credentials_end_in_a_login_error() -> None:
    # A deleted ServiceAccount: the token file still holds the refused token.
    with pytest.raises(kopf.LoginError, match="Ran out of valid credentials"):
        asyncio.run(_refused_then_logged_in_again(Sessions(), REVOKED))


def test_new_credentials_get_a_new_session() -> None:
    rotated = kopf.ConnectionInfo(server="https://127.0.0.1:6443", token="rotated")
    asyncio.run(_refused_then_logged_in_again(Sessions(), rotated))  # no LoginError

    async def sessions_for(*infos: kopf.ConnectionInfo) -> list[kopf.AiohttpSession]:
        sessions = Sessions()
        made = [sessions.for_credentials(info, 4) for info in infos]
        for session in {id(m): m for m in made}.values():
            await session.aiohttp_session.close()
        return made

    same, again, new = asyncio.run(sessions_for(REVOKED, REVOKED, rotated))
    assert same is again and new is not same
    assert new.aiohttp_session is not same.aiohttp_session
