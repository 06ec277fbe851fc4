"""The throwaway PostgreSQL cluster really runs: a real server answers SQL."""

import pytest
import sqlalchemy as sa


@pytest.mark.postgres
def test_throwaway_cluster_answers_sql(fresh_postgres_url: str) -> None:
    engine = sa.create_engine(fresh_postgres_url)
    with engine.connect() as c:
        version = c.execute(sa.text("SHOW server_version")).scalar_one()
    engine.dispose()
    assert str(version).startswith(("15", "16"))
