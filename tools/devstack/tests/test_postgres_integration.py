"""FerretDB on PostgreSQL: healthy, durable across restarts, equality filters served by indexes.

Each test uses a database of its own (a PostgreSQL schema under FerretDB), dropped at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from devstack import process, stack
from devstack.api import Endpoints, ensure_up
from devstack.mongodb import FERRETDB_DATABASE, MongoDB
from devstack.postgres import Postgres
from devstack.settings import Settings
from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.database import Database

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


@pytest.fixture(scope="module")
def endpoints() -> Endpoints:
    endpoints = ensure_up()
    if MongoDB(Settings.from_env()).backend() != "ferretdb":
        pytest.skip("the MongoDB wire server is mongod, not FerretDB on PostgreSQL")
    return endpoints


@pytest.fixture
def postgres() -> Postgres:
    return Postgres(Settings.from_env())


@pytest.fixture
def db(endpoints: Endpoints) -> Iterator[Database[Doc]]:
    client: MongoClient[Doc] = MongoClient(endpoints.mongodb_url, serverSelectionTimeoutMS=20000)
    name = f"devstack_test_{uuid.uuid4().hex[:10]}"
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def _table(postgres: Postgres, db: str, collection: str) -> str:
    """The PostgreSQL table FerretDB keeps ``db.collection`` in (from its metadata table)."""
    return postgres.psql(
        f"SELECT _jsonb->>'table' FROM \"{db}\"._ferretdb_database_metadata "
        f"WHERE _jsonb->>'_id' = '{collection}'",
        database=FERRETDB_DATABASE,
    )


def _gin_twins(postgres: Postgres, db: str, table: str) -> dict[str, str]:
    """Twin index name -> its key expression."""
    rows = postgres.psql(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid, 1, true) FROM pg_index i "
        "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam "
        f"WHERE i.indrelid = '\"{db}\".\"{table}\"'::regclass AND am.amname = 'gin'",
        database=FERRETDB_DATABASE,
    )
    return dict(line.split("|", 1) for line in rows.splitlines() if line)


def test_postgres_and_ferretdb_on_it_are_healthy(endpoints: Endpoints, postgres: Postgres) -> None:
    settings = Settings.from_env()
    by_name = {s.name: s for s in stack.status(settings)}
    assert by_name["postgres"].healthy, by_name["postgres"].detail
    assert by_name["postgres"].version.startswith("PostgreSQL ")
    assert by_name["mongodb"].healthy, by_name["mongodb"].detail
    mongodb = MongoDB(settings)
    pid = mongodb.running_pid()
    assert pid is not None
    assert f"-postgresql-url {postgres.url(FERRETDB_DATABASE)}" in process.cmdline(pid)
    triggers = postgres.psql(
        "SELECT evtname FROM pg_event_trigger ORDER BY 1", database=FERRETDB_DATABASE
    )
    assert triggers.splitlines() == ["devstack_gin_twins_create", "devstack_gin_twins_drop"]


def test_an_equality_filter_on_an_indexed_field_uses_its_gin_twin(
    db: Database[Doc], postgres: Postgres
) -> None:
    coll = db["runs"]
    coll.create_index([("tenantId", ASCENDING), ("createdAt", DESCENDING)], name="tenant_newest")
    coll.insert_many(
        [
            {"_id": f"run_{i:05d}", "tenantId": f"t{i % 50}", "createdAt": i, "pad": "x" * 200}
            for i in range(3000)
        ]
    )
    table = _table(postgres, db.name, "runs")
    twins = _gin_twins(postgres, db.name, table)
    assert sorted(twins.values()) == [
        "(_jsonb -> '_id'::text)",
        "(_jsonb -> 'createdAt'::text)",
        "(_jsonb -> 'tenantId'::text)",
    ]
    tenant_twin = next(name for name, expr in twins.items() if "tenantId" in expr)

    assert len(list(coll.find({"tenantId": "t7"}))) == 60
    assert coll.find_one({"_id": "run_00042"}) is not None

    # What FerretDB runs for {tenantId: "t7"}: a prepared `_jsonb->$1 @> $2` (seen with
    # log_statement=all). Executed more than 5 times, so a generic plan would have had its turn.
    explain = "EXPLAIN (COSTS OFF) EXECUTE q('tenantId', '\"t7\"');"
    plans = postgres.psql(
        f'PREPARE q(text, jsonb) AS SELECT _jsonb FROM "{db.name}"."{table}" '
        f"WHERE _jsonb->$1 @> $2; " + explain * 7,
        database=FERRETDB_DATABASE,
    )
    last = plans.split("Bitmap Heap Scan")[-1]
    assert f"Bitmap Index Scan on {tenant_twin}" in last, plans

    # FerretDB's own explain runs PostgreSQL's EXPLAIN on the query it issues
    answer = db.command("explain", {"find": "runs", "filter": {"tenantId": "t7"}})
    assert answer["filterPushdown"] is True
    assert tenant_twin in str(answer["queryPlanner"])

    # dropping the index drops the twins no other index needs (_id's stays)
    coll.drop_index("tenant_newest")
    assert list(_gin_twins(postgres, db.name, table).values()) == ["(_jsonb -> '_id'::text)"]


def test_data_survives_a_restart_of_ferretdb_and_postgres(
    db: Database[Doc], postgres: Postgres
) -> None:
    settings = Settings.from_env()
    db["kept"].insert_one({"_id": "before-restart", "n": 1})
    for component in (MongoDB(settings), postgres):  # FerretDB first, as `down` does
        component.stop(print)
        assert component.running_pid() is None
    stack.up(settings, say=print)
    assert db["kept"].find_one({"_id": "before-restart"}) == {"_id": "before-restart", "n": 1}
