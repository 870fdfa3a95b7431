"""Operator commands, the same as the admin API (`/v1/admin/…`) without a running ingress:

    python -m ingress.admin create-key --tenant T [--name N] [--scopes runs:write,…]
                                       [--keep KEY] [--limits unlimited]
    python -m ingress.admin list-keys --tenant T
    python -m ingress.admin revoke-key KEY_ID
    python -m ingress.admin set-limits --tenant T [--requests-per-second N|unlimited|default]
                                       [--runs-per-minute …] [--concurrent-runs …]
                                       [--stored-bytes …] | --unlimited

`create-key` prints the key alone on its last line (scripts take that line). `--keep` returns
KEY unchanged when it is still a valid key of the tenant, so running the bootstrap twice
leaves one working key. `--limits unlimited` also lifts the tenant's rate limits and quotas
(the development and test tenants).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from storage import mongo
from storage.keys import SCOPES, ApiKeyRepository
from storage.mongo import Document
from storage.tenants import LIMIT_FIELDS, TenantRepository

from ingress.settings import IngressSettings

UNLIMITED: dict[str, float | None] = dict.fromkeys(LIMIT_FIELDS)


async def _with_db(
    settings: IngressSettings, work: Callable[[AsyncDatabase[Document]], Awaitable[Any]]
) -> Any:
    client = mongo.connect(settings.mongodb_url, app_name="ingress-admin")
    try:
        db = client[settings.mongodb_database]
        await mongo.ensure_indexes(db)
        return await work(db)
    finally:
        await client.close()


async def create_key(
    settings: IngressSettings,
    tenant: str,
    keep: str | None,
    *,
    name: str = "dev",
    scopes: tuple[str, ...] = SCOPES,
    limits: dict[str, float | None] | None = None,
) -> str:
    async def work(db: AsyncDatabase[Document]) -> str:
        keys = ApiKeyRepository(db)
        if limits is not None:
            await TenantRepository(db).set_limits(tenant, limits)
        if keep and await keys.tenant_of(keep) == tenant:
            return keep
        _, key = await keys.create(
            tenant_id=tenant, name=name, scopes=scopes, now=datetime.now(UTC)
        )
        return key

    result: str = await _with_db(settings, work)
    return result


def _limit_value(text: str) -> float | str:
    if text in ("unlimited", "default"):
        return text
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("a limit is a number, unlimited or default") from None
    if not value > 0:
        raise argparse.ArgumentTypeError("a limit is a positive number, unlimited or default")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingress.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    ck = sub.add_parser("create-key", help="create an API key for a tenant; prints it")
    ck.add_argument("--tenant", required=True)
    ck.add_argument("--name", default="dev")
    ck.add_argument("--scopes", default=",".join(SCOPES), help="comma separated")
    ck.add_argument("--keep", help="an existing key to keep if it is still valid")
    ck.add_argument(
        "--limits", choices=["unlimited"], help="lift the tenant's rate limits and quotas"
    )
    lk = sub.add_parser("list-keys", help="a tenant's keys (prefix only), as JSON lines")
    lk.add_argument("--tenant", required=True)
    rk = sub.add_parser("revoke-key", help="revoke a key by its id (key_…)")
    rk.add_argument("key_id")
    sl = sub.add_parser("set-limits", help="a tenant's own rate limits and quotas")
    sl.add_argument("--tenant", required=True)
    sl.add_argument("--unlimited", action="store_true", help="no limits at all")
    for field in LIMIT_FIELDS:
        flag = "--" + "".join("-" + c.lower() if c.isupper() else c for c in field)
        sl.add_argument(
            flag,
            dest=field,
            type=_limit_value,
            default=argparse.SUPPRESS,  # absent: left as it is
            help="N, unlimited or default",
        )
    args = parser.parse_args(argv)
    settings = IngressSettings()

    if args.command == "create-key":
        scopes = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
        limits = UNLIMITED if args.limits == "unlimited" else None
        key = asyncio.run(
            create_key(
                settings, args.tenant, args.keep, name=args.name, scopes=scopes, limits=limits
            )
        )
        print(key)
    elif args.command == "list-keys":

        async def list_keys(db: AsyncDatabase[Document]) -> None:
            for k in await ApiKeyRepository(db).list(args.tenant):
                print(json.dumps({**k.__dict__, "scopes": list(k.scopes)}, default=str))

        asyncio.run(_with_db(settings, list_keys))
    elif args.command == "revoke-key":

        async def revoke(db: AsyncDatabase[Document]) -> bool:
            return await ApiKeyRepository(db).revoke(args.key_id, now=datetime.now(UTC)) is not None

        if not asyncio.run(_with_db(settings, revoke)):
            print(f"no key {args.key_id!r}", file=sys.stderr)
            return 1
        print(f"revoked {args.key_id}")
    else:

        async def set_limits(db: AsyncDatabase[Document]) -> dict[str, float | None]:
            tenants = TenantRepository(db)
            own = dict(UNLIMITED) if args.unlimited else await tenants.limits(args.tenant)
            for field in LIMIT_FIELDS:
                value = vars(args).get(field)
                if value == "default":
                    own.pop(field, None)
                elif value == "unlimited":
                    own[field] = None
                elif value is not None:
                    own[field] = value
            return await tenants.set_limits(args.tenant, own)

        print(json.dumps(asyncio.run(_with_db(settings, set_limits))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
