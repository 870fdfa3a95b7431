"""Operator commands: `python -m ingress.admin create-key --tenant T [--keep KEY]`.

`--keep` returns KEY unchanged when it is still a valid key of the tenant, so running the
bootstrap twice leaves one working key.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

from storage import mongo
from storage.keys import ApiKeyRepository

from ingress.settings import IngressSettings


async def create_key(settings: IngressSettings, tenant: str, keep: str | None) -> str:
    client = mongo.connect(settings.mongodb_url, app_name="ingress-admin")
    try:
        db = client[settings.mongodb_database]
        await mongo.ensure_indexes(db)
        keys = ApiKeyRepository(db)
        if keep and await keys.tenant_of(keep) == tenant:
            return keep
        return await keys.create(tenant_id=tenant, name="dev", now=datetime.now(UTC))
    finally:
        await client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ingress.admin")
    sub = parser.add_subparsers(dest="command", required=True)
    ck = sub.add_parser("create-key", help="create an API key for a tenant; prints it")
    ck.add_argument("--tenant", required=True)
    ck.add_argument("--keep", help="an existing key to keep if it is still valid")
    args = parser.parse_args(argv)
    print(asyncio.run(create_key(IngressSettings(), args.tenant, args.keep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
